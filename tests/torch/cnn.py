#!/usr/bin/python3
"""PyTorch's answers for tests/cnn_torch_test.ts: the CNN layers one at a time, and a small CNN
trained a few SGD steps, from the toolkit's weights and inputs.

Reads one JSON object on stdin and prints one JSON object on stdout (errors go to stderr with
exit status 1). Floats travel as JSON numbers (a float32 value is exact as a double).

  {"layers": [case, ...], "cnn": {...} | null}

  case   {"kind", "args", "x", "shape", "dy", "state", "eval"}: kind one of LAYERS below with
         its keyword arguments; state the layer's state dict (name -> values, PyTorch layout);
         the layer runs forward in train mode on x and backward with dy (y·dy summed), in
         float64; with "eval" it then runs one eval-mode forward on x too.
         Answers {"y", "dx", "grads": {name: values}, "state": {name: values}, "eval": y}.
  cnn    {"state", "x", "shape", "labels", "lr", "momentum", "steps"}: the CNN of
         tests/cnn_torch_test.ts (CNN below) loaded with state, trained `steps` full-batch SGD
         steps of CrossEntropyLoss; answers {"float32", "float64"}, each {"losses", "state"}.
"""

import json
import sys

import torch
from torch import nn

torch.set_num_threads(1)

LAYERS = {
    "conv2d": lambda a: nn.Conv2d(**a),
    "maxpool2d": lambda a: nn.MaxPool2d(**a),
    "avgpool2d": lambda a: nn.AvgPool2d(**a),
    "adaptiveavgpool2d": lambda a: nn.AdaptiveAvgPool2d(**a),
    "batchnorm2d": lambda a: nn.BatchNorm2d(**a),
}


def CNN():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 12, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(12, 5),
    )


def flat(t):
    return t.detach().reshape(-1).tolist()


def load(module, state, dtype):
    own = module.state_dict()
    tensors = {}
    for name, values in state.items():
        ref = own[name]
        t = torch.tensor(values, dtype=torch.int64 if ref.dtype == torch.int64 else dtype)
        tensors[name] = t.reshape(ref.shape)
    module.load_state_dict(tensors, strict=True)


def layer_case(case):
    args = {k: tuple(v) if isinstance(v, list) else v for k, v in case["args"].items()}
    module = LAYERS[case["kind"]](args).to(torch.float64)
    load(module, case["state"], torch.float64)
    module.train()
    x = torch.tensor(case["x"], dtype=torch.float64).reshape(case["shape"]).requires_grad_(True)
    y = module(x)
    dy = torch.tensor(case["dy"], dtype=torch.float64).reshape(y.shape)
    (y * dy).sum().backward()
    out = {
        "y": flat(y),
        "dx": flat(x.grad),
        "grads": {n: flat(p.grad) for n, p in module.named_parameters()},
        "state": {n: flat(v) for n, v in module.state_dict().items()},
    }
    if case.get("eval"):
        module.eval()
        with torch.no_grad():
            out["eval"] = flat(module(x))
    return out


def cnn_case(spec, dtype):
    model = CNN().to(dtype)
    load(model, spec["state"], dtype)
    x = torch.tensor(spec["x"], dtype=dtype).reshape(spec["shape"])
    labels = torch.tensor(spec["labels"], dtype=torch.int64)
    opt = torch.optim.SGD(model.parameters(), lr=spec["lr"], momentum=spec["momentum"])
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    losses = []
    for _ in range(spec["steps"]):
        opt.zero_grad()
        loss = loss_fn(model(x), labels)
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    return {"losses": losses, "state": {n: flat(v) for n, v in model.state_dict().items()}}


def main():
    spec = json.load(sys.stdin)
    out = {"layers": [layer_case(c) for c in spec.get("layers", [])]}
    if spec.get("cnn"):
        out["cnn"] = {
            "float32": cnn_case(spec["cnn"], torch.float32),
            "float64": cnn_case(spec["cnn"], torch.float64),
        }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
