#!/usr/bin/python3
"""PyTorch's answers for tests/composite_test.ts: models built of containers, in float32 and
float64.

Reads one JSON object on stdin and prints one JSON object on stdout (errors go to stderr with
exit status 1). Floats travel as JSON numbers: a float32 value is exact as a double, and
`tolist()` gives doubles, so nothing is rounded on the way.

  {"arch", "weights", "torchOut", "x", "shape", "labels", "lr", "steps"}

  arch      one of ARCHS below, the same architectures the test builds with the toolkit.
  weights   a safetensors file the toolkit wrote (its state dict, PyTorch names and layouts).
  torchOut  where to write a state dict PyTorch made (manual_seed(0), then three train-mode
            forwards on x, so the BatchNorm statistics are not at their defaults).
  x, shape  the inputs (row-major) and their shape; labels the class of each row.

Prints:
  names        [[name, shape, dtype]] of a fresh model's state_dict(), in its order.
  theirs       {"float32", "float64"}: eval logits of the torchOut weights (float64: the same
               weights as doubles).
  ours         {"float32", "float64"}: eval logits of the toolkit's weights, loaded with
               load_state_dict(strict=True).
  train        {"float32", "float64"}, each {"losses", "state", "logits"}: `steps` full-batch Adam
               steps (lr) of CrossEntropyLoss on (x, labels) in train mode from the toolkit's
               weights; the loss of each step, the state dict after the last (name -> values)
               and the eval logits then.
"""

import json
import os
import sys

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_goldens as mg  # noqa: E402

torch.set_num_threads(1)


class Residual(nn.Module):
    """y = x + fn(x): the usual PyTorch skip connection, the child named "fn"."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return x + self.fn(x)


class Block(nn.Module):
    """A module of one's own with named children: fc, act, bn.

    The Linear right before a BatchNorm has no bias here (as in the nested model): such a bias
    has an exactly-zero gradient while its units stay positive over the batch, and Adam turns
    the rounding noise into lr-sized steps, so float32 and float64 runs would part by lr-sized
    amounts and the tests' tolerance (their distance) would say nothing.
    """

    def __init__(self, n):
        super().__init__()
        self.fc = nn.Linear(n, n, bias=False)
        self.act = nn.LeakyReLU()
        self.bn = nn.BatchNorm1d(n)

    def forward(self, x):
        return self.bn(self.act(self.fc(x)))


ARCHS = {
    # A Sequential two levels deep inside a Sequential (square weights: a transposed export
    # would load without complaint and score wrong).
    "nested": lambda: nn.Sequential(
        nn.Flatten(),
        nn.Linear(12, 16),
        nn.Sequential(nn.Linear(16, 16), nn.LeakyReLU(), nn.Sequential(nn.Linear(16, 16, bias=False), nn.LeakyReLU())),
        nn.BatchNorm1d(16),
        nn.Linear(16, 5),
    ),
    # A skip connection around a Sequential, then an activation that must not run inside it.
    "residual": lambda: nn.Sequential(
        nn.Linear(12, 8),
        Residual(nn.Sequential(nn.Linear(8, 8), nn.LeakyReLU(), nn.Linear(8, 8))),
        nn.LeakyReLU(),
        nn.Linear(8, 5),
    ),
    "custom": lambda: nn.Sequential(
        nn.Flatten(),
        nn.Linear(12, 8),
        nn.LeakyReLU(),
        Block(8),
        nn.Linear(8, 5),
    ),
}


def tensors(arrays, dtype):
    """numpy arrays -> torch tensors, floating ones as `dtype`, counters as int64."""
    return {k: torch.from_numpy(v.copy()).to(dtype) if v.dtype != np.int64 else torch.from_numpy(v.copy())
            for k, v in arrays.items()}


def flat(t):
    return t.detach().reshape(-1).tolist()


def eval_logits(model, x):
    model.eval()
    with torch.no_grad():
        return flat(model(x))


def loaded(spec, arrays, dtype):
    model = ARCHS[spec["arch"]]().to(dtype)
    model.load_state_dict(tensors(arrays, dtype), strict=True)
    return model


def inputs(spec, dtype):
    x = torch.tensor(spec["x"], dtype=dtype).reshape(spec["shape"])
    return x, torch.tensor(spec["labels"], dtype=torch.int64)


def train(spec, arrays, dtype):
    model = loaded(spec, arrays, dtype)
    x, labels = inputs(spec, dtype)
    optimizer = torch.optim.Adam(model.parameters(), lr=spec["lr"])
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    losses = []
    for _ in range(spec["steps"]):
        optimizer.zero_grad()
        loss = loss_fn(model(x), labels)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.item()))
    state = {k: flat(v) for k, v in model.state_dict().items()}
    return {"losses": losses, "state": state, "logits": eval_logits(model, x)}


def theirs(spec):
    torch.manual_seed(0)
    model = ARCHS[spec["arch"]]()
    x, _ = inputs(spec, torch.float32)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(x)
    arrays = mg.state_dict_arrays(model)
    mg.write_safetensors(spec["torchOut"], arrays, {"arch": spec["arch"]})
    out = {}
    for name, dtype in (("float32", torch.float32), ("float64", torch.float64)):
        out[name] = eval_logits(loaded(spec, arrays, dtype), inputs(spec, dtype)[0])
    return out


def main():
    spec = json.load(sys.stdin)
    names = [[k, list(v.shape), "I64" if v.dtype == torch.int64 else "F32"]
             for k, v in ARCHS[spec["arch"]]().state_dict().items()]
    ours_arrays, _ = mg.read_safetensors(spec["weights"])
    ours = {}
    trained = {}
    for name, dtype in (("float32", torch.float32), ("float64", torch.float64)):
        ours[name] = eval_logits(loaded(spec, ours_arrays, dtype), inputs(spec, dtype)[0])
        trained[name] = train(spec, ours_arrays, dtype)
    json.dump({"names": names, "theirs": theirs(spec), "ours": ours, "train": trained}, sys.stdout)


if __name__ == "__main__":
    main()
