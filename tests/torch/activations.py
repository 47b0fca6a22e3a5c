#!/usr/bin/python3
"""PyTorch's answers for tests/activations_test.ts, in float32 and float64.

Reads one JSON object on stdin and prints one JSON object on stdout (errors go to stderr with
exit status 1). Floats travel as JSON numbers: a float32 value is exact as a double, and
`tolist()` gives doubles, so nothing is rounded on the way.

  layers: {"command": "layers", "cases": [{"layer", "shape", "x", "dy"}]}
      For each case, layer(x) and the gradient of sum(layer(x) * dy) with respect to x, with x
      of the given shape. layer is one of tanh, sigmoid, gelu, gelu_tanh, silu, softmax,
      log_softmax (the last two over dim -1). Prints {"float32": [{"y", "dx"}], "float64": [...]}.

  train: {"command": "train", "layers": [...], "state": {name: values}, "x", "shape", "labels",
          "lr", "steps"}
      Builds nn.Sequential from layers ({"kind": "linear", "in", "out"} or an activation name as
      above), loads state (PyTorch names and layouts), and runs `steps` full-batch SGD steps of
      CrossEntropyLoss on (x, labels). Prints, per dtype, {"losses": [...], "grads": {...} (of
      the first step), "state": {...} (after the last)}.
"""

import json
import sys

import torch

torch.set_num_threads(1)

ACTIVATIONS = {
    "tanh": lambda: torch.nn.Tanh(),
    "sigmoid": lambda: torch.nn.Sigmoid(),
    "gelu": lambda: torch.nn.GELU(approximate="none"),
    "gelu_tanh": lambda: torch.nn.GELU(approximate="tanh"),
    "silu": lambda: torch.nn.SiLU(),
    "softmax": lambda: torch.nn.Softmax(dim=-1),
    "log_softmax": lambda: torch.nn.LogSoftmax(dim=-1),
}


def layers(spec, dtype):
    out = []
    for case in spec["cases"]:
        layer = ACTIVATIONS[case["layer"]]()
        x = torch.tensor(case["x"], dtype=dtype).reshape(case["shape"]).requires_grad_()
        dy = torch.tensor(case["dy"], dtype=dtype).reshape(case["shape"])
        y = layer(x)
        (y * dy).sum().backward()
        out.append({"y": y.detach().flatten().tolist(), "dx": x.grad.flatten().tolist()})
    return out


def build(spec):
    modules = []
    for layer in spec["layers"]:
        if isinstance(layer, dict):
            modules.append(torch.nn.Linear(layer["in"], layer["out"]))
        else:
            modules.append(ACTIVATIONS[layer]())
    return torch.nn.Sequential(*modules)


def train(spec, dtype):
    model = build(spec).to(dtype)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    model.load_state_dict(
        {k: torch.tensor(v, dtype=dtype).reshape(shapes[k]) for k, v in spec["state"].items()},
        strict=True,
    )
    x = torch.tensor(spec["x"], dtype=dtype).reshape(spec["shape"])
    labels = torch.tensor(spec["labels"], dtype=torch.int64)
    opt = torch.optim.SGD(model.parameters(), lr=spec["lr"])
    loss_fn = torch.nn.CrossEntropyLoss()
    losses = []
    grads = {}
    for step in range(spec["steps"]):
        opt.zero_grad()
        loss = loss_fn(model(x), labels)
        loss.backward()
        if step == 0:
            grads = {k: p.grad.flatten().tolist() for k, p in model.named_parameters()}
        opt.step()
        losses.append(loss.item())
    state = {k: v.flatten().tolist() for k, v in model.state_dict().items()}
    return {"losses": losses, "grads": grads, "state": state}


def main():
    spec = json.load(sys.stdin)
    run = {"layers": layers, "train": train}[spec["command"]]
    json.dump({"float32": run(spec, torch.float32), "float64": run(spec, torch.float64)}, sys.stdout)


if __name__ == "__main__":
    main()
