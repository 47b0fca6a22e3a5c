#!/usr/bin/python3
"""PyTorch's losses on given inputs, in float32, for tests/losses_test.ts.

Reads JSON from stdin: {"cases": [case, ...]}, each case
  {"kind": "MSELoss" | "L1Loss" | "BCEWithLogitsLoss" | "NLLLoss",
   "shape": [..], "input": [flat f32 values], "target": [flat f32 values] (NLL: u32 labels),
   "options": {"reduction": "mean" | "sum", "posWeight": [..], "weight": [..],
               "ignoreIndex": n}}
and prints {"torch": version, "results": [{"loss": float, "grad": [flat]}, ...]}: the loss of
torch.nn.<kind>(...)(input, target) and the gradient of that loss with respect to input, both
computed by PyTorch in float32 (single-threaded, on the CPU). NaN is written as null.
"""

import json
import math
import sys

import torch


def finite_or_none(v):
    return v if math.isfinite(v) else None


def run(case):
    o = case.get("options", {})
    kw = {"reduction": o.get("reduction", "mean")}
    x = torch.tensor(case["input"], dtype=torch.float32).reshape(case["shape"])
    x.requires_grad_(True)
    kind = case["kind"]
    if kind == "NLLLoss":
        target = torch.tensor(case["target"], dtype=torch.int64)
        if "weight" in o:
            kw["weight"] = torch.tensor(o["weight"], dtype=torch.float32)
        if "ignoreIndex" in o:
            kw["ignore_index"] = int(o["ignoreIndex"])
        loss_fn = torch.nn.NLLLoss(**kw)
    else:
        target = torch.tensor(case["target"], dtype=torch.float32).reshape(case["shape"])
        if kind == "BCEWithLogitsLoss":
            if "posWeight" in o:
                kw["pos_weight"] = torch.tensor(o["posWeight"], dtype=torch.float32)
            loss_fn = torch.nn.BCEWithLogitsLoss(**kw)
        else:
            loss_fn = getattr(torch.nn, kind)(**kw)
    loss = loss_fn(x, target)
    loss.backward()
    return {
        "loss": finite_or_none(float(loss.item())),
        "grad": [finite_or_none(v) for v in x.grad.flatten().tolist()],
    }


def main():
    torch.set_num_threads(1)
    spec = json.load(sys.stdin)
    out = {"torch": torch.__version__, "results": [run(c) for c in spec["cases"]]}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
