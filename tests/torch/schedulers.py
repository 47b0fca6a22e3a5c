#!/usr/bin/python3
"""PyTorch's learning-rate schedulers run live, for tests/schedulers_test.ts.

Reads JSON from stdin: {"cases": [case, ...]}, each case
  {"lr": base lr, "steps": N, "kind": "StepLR" | ... | "SequentialLR", "args": {...}}
where args are the PyTorch keyword arguments; a SequentialLR case has
  "args": {"milestones": [...]} and "children": [{"kind": ..., "args": {...}}, ...].
Prints {"torch": version, "results": [[lr0, lr1, ..., lrN], ...]}: the optimizer's lr after
construction and after each of N scheduler.step() calls (an SGD over one parameter, as a float64
Python number).
"""

import json
import sys
import warnings

import torch
from torch.optim import lr_scheduler

warnings.filterwarnings("ignore")


def make(optimizer, kind, args):
    return getattr(lr_scheduler, kind)(optimizer, **args)


def run(case):
    p = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([p], lr=case["lr"])
    if case["kind"] == "SequentialLR":
        children = [make(optimizer, c["kind"], c["args"]) for c in case["children"]]
        scheduler = lr_scheduler.SequentialLR(optimizer, children, **case["args"])
    else:
        scheduler = make(optimizer, case["kind"], case["args"])
    lrs = [optimizer.param_groups[0]["lr"]]
    for _ in range(case["steps"]):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]["lr"])
    return lrs


def main():
    spec = json.load(sys.stdin)
    print(json.dumps({"torch": torch.__version__, "results": [run(c) for c in spec["cases"]]}))


if __name__ == "__main__":
    main()
