#!/usr/bin/python3
"""PyTorch's side of tests/fit_parity_test.ts: the same training run as the toolkit's `fit`, in
float32 and float64, from the toolkit's initial weights and on the same batches.

Reads one JSON object on stdin and prints one JSON object on stdout (errors go to stderr with
exit status 1). Floats travel as JSON numbers: a float32 value is exact as a double.

  {"arch", "weights", "loss", "optimizer", "scheduler", "epochs", "batch", "features",
   "x", "y", "order", "valX", "valY"}

  arch       the model as a tree of layer specs (see `build`), the one the test builds.
  weights    a safetensors file the toolkit wrote: its initial state dict, PyTorch's names.
  loss       "CrossEntropyLoss" (y: class indices) or "MSELoss" (y: float targets, row-major).
  optimizer  {"kind": "Adam" | "AdamW" | "SGD", ...the toolkit's option names}; clipGradValue
             becomes torch.nn.utils.clip_grad_value_ between backward and step, then
             clipGradNorm torch.nn.utils.clip_grad_norm_; "groups": [{"select": "matrices" |
             "vectors", ...options}] makes one param group of the parameters of rank > 1 (or 1)
             each, with its own options.
  accumulate batches per optimizer step (default 1): zero_grad at a window's first batch,
             (loss / accumulate).backward() at each, clip and step at its last and at the
             epoch's last batch (the usual PyTorch loop).
  scheduler  null, or {"kind": "OneCycleLR", "maxLr", "options": {...}, "interval": "step" |
             "epoch"}: the toolkit's option names; momentum is not cycled (as the toolkit).
  x, y       the training samples (x row-major, `features` values a row; `batch` rows a
             step); order[e] is epoch e's permutation of the samples, cut into consecutive
             batches.
  valX, valY the validation samples, in order, in batches of `batch`, evaluated after each
             epoch in eval mode.
  images     null, or {"shape": [C, H, W], "normalize": {"mean": [C], "std": [C]}}: x and
             valX are then uint8 values, scaled here by /255 and normalised per channel,
             (x / 255 - mean_c) / std_c, in the run's dtype (torchvision's ToTensor and
             Normalize), and flattened to `features` values a row. With "augment": {"flip",
             "crop"} each training batch is cropped and flipped first, as `augmented` says, with
             the draws augmentation[e][position] of the toolkit's loader.
  lossOptions  the loss's options in the toolkit's names (labelSmoothing), default none.
  nudged     float32 runs from the initial weights nudged by one ulp each (see `nudged`),
             default 0: where a model sits on ReLU kinks and max-pool ties, float32 rounding
             flips single decisions, and one float32 run is not a fair sample of its drift.

Prints {"float32": run, "float64": run, "nudged": [run, ...]}, each run
  {"train": [mean batch loss per epoch], "val": [mean batch loss per epoch],
   "state": {name: values after the last epoch}, "clipped": gradient elements clamped,
   "gradients": gradient elements seen by the clamp, "normClipped": steps whose gradient norm
   exceeded clipGradNorm, "steps": steps seen by clip_grad_norm_}.
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
    """y = x + fn(x), the child named "fn" (as lib/nn/residual.ts names it)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return x + self.fn(x)


def build(spec):
    """A module from the test's layer spec: {"kind": ..., ...}."""
    kind = spec["kind"]
    if kind == "Sequential":
        return nn.Sequential(*[build(c) for c in spec["children"]])
    if kind == "Residual":
        return Residual(build(spec["fn"]))
    if kind == "Linear":
        return nn.Linear(spec["in"], spec["out"], bias=spec.get("bias", True))
    if kind == "BatchNorm1d":
        return nn.BatchNorm1d(spec["features"])
    if kind == "LeakyReLU":
        return nn.LeakyReLU(spec.get("slope", 0.01))
    if kind == "Tanh":
        return nn.Tanh()
    if kind == "ReLU":
        return nn.ReLU()
    if kind == "Unflatten":
        return nn.Unflatten(1, tuple(spec["shape"]))
    if kind == "Flatten":
        return nn.Flatten()
    if kind == "Conv2d":
        return nn.Conv2d(spec["in"], spec["out"], spec["kernel"], padding=spec["padding"],
                         bias=spec["bias"])
    if kind == "BatchNorm2d":
        return nn.BatchNorm2d(spec["features"])
    if kind == "MaxPool2d":
        return nn.MaxPool2d(spec["kernel"])
    if kind == "AdaptiveAvgPool2d":
        return nn.AdaptiveAvgPool2d(spec["size"])
    raise ValueError(f"fit_parity.py: unknown layer kind {kind!r}")


# The toolkit's option names -> PyTorch's keyword arguments.
OPTIMIZER_ARGS = {"lr": "lr", "momentum": "momentum", "dampening": "dampening",
                  "nesterov": "nesterov", "weightDecay": "weight_decay", "betas": "betas",
                  "eps": "eps", "amsgrad": "amsgrad"}
LOSS_ARGS = {"labelSmoothing": "label_smoothing"}
SCHEDULER_ARGS = {"totalSteps": "total_steps", "pctStart": "pct_start",
                  "divFactor": "div_factor", "finalDivFactor": "final_div_factor",
                  "threePhase": "three_phase", "annealStrategy": "anneal_strategy"}


def torch_args(options):
    return {OPTIMIZER_ARGS[k]: (tuple(v) if k == "betas" else v)
            for k, v in options.items()
            if k not in ("kind", "clipGradValue", "clipGradNorm", "groups", "select")}


def optimizer_for(spec, model):
    params = list(model.parameters())
    if "groups" in spec:
        params = [{"params": [p for p in params if (p.dim() > 1) == (g["select"] == "matrices")],
                   **torch_args(g)} for g in spec["groups"]]
    return getattr(torch.optim, spec["kind"])(params, **torch_args(spec))


def scheduler_for(spec, optimizer):
    if spec is None:
        return None
    if spec["kind"] != "OneCycleLR":
        raise ValueError(f"fit_parity.py: unknown scheduler {spec['kind']!r}")
    args = {SCHEDULER_ARGS[k]: v for k, v in spec["options"].items()}
    return torch.optim.lr_scheduler.OneCycleLR(optimizer, spec["maxLr"], cycle_momentum=False,
                                               **args)


def tensors(arrays, dtype):
    """numpy arrays -> torch tensors, floating ones as `dtype`, counters as int64."""
    return {k: torch.from_numpy(v.copy()).to(dtype) if v.dtype != np.int64 else torch.from_numpy(v.copy())
            for k, v in arrays.items()}


def normalize(images, x, dtype):
    """[n, C·H·W] values in [0, 1] normalised per channel, as torchvision's Normalize."""
    channels = images["shape"][0]
    norm = images["normalize"]
    mean = torch.tensor(norm["mean"], dtype=dtype).reshape(1, channels, 1)
    std = torch.tensor(norm["std"], dtype=dtype).reshape(1, channels, 1)
    return ((x.reshape(len(x), channels, -1) - mean) / std).reshape(len(x), -1)


def augmented(images, x01, words, dtype):
    """Rows of [0, 1] images cropped from the zero-padded image at (dy, dx) and then flipped
    (torchvision's RandomCrop(padding) and RandomHorizontalFlip), with the loader's draws: word
    bit 0 flip, bits 8-15 dx, bits 16-23 dy; then normalised."""
    c, h, w = images["shape"]
    crop = images["augment"]["crop"]
    padded = torch.nn.functional.pad(x01.reshape(-1, c, h, w), (crop, crop, crop, crop))
    out = torch.empty(len(x01), c, h, w, dtype=dtype)
    for i, a in enumerate(words):
        dx, dy = (a >> 8) & 255, (a >> 16) & 255
        window = padded[i, :, dy:dy + h, dx:dx + w]
        out[i] = window.flip(-1) if images["augment"]["flip"] and a & 1 else window
    return normalize(images, out.reshape(len(x01), -1), dtype)


def samples(spec, xs, ys, dtype):
    """(x, y) as tensors: x of [n, features]; y class indices or float targets of [n, outputs].
    For an image case with augmentation x stays in [0, 1] (run normalises each batch)."""
    x = torch.tensor(xs, dtype=dtype).reshape(-1, spec["features"])
    images = spec.get("images")
    if images is not None:
        x = x / 255
        if images.get("augment") is None:
            x = normalize(images, x, dtype)
    if spec["loss"] == "CrossEntropyLoss":
        return x, torch.tensor(ys, dtype=torch.int64)
    return x, torch.tensor(ys, dtype=dtype).reshape(len(x), -1)


def run(spec, arrays, dtype):
    model = build(spec["arch"]).to(dtype)
    model.load_state_dict(tensors(arrays, dtype), strict=True)
    x, y = samples(spec, spec["x"], spec["y"], dtype)
    val_x, val_y = samples(spec, spec["valX"], spec["valY"], dtype)
    images = spec.get("images")
    augment = images is not None and images.get("augment") is not None
    if augment:
        val_x = normalize(images, val_x, dtype)
    loss_fn = getattr(nn, spec["loss"])(**{LOSS_ARGS[k]: v
                                           for k, v in spec.get("lossOptions", {}).items()})
    optimizer = optimizer_for(spec["optimizer"], model)
    scheduler = scheduler_for(spec["scheduler"], optimizer)
    per_step = scheduler is not None and spec["scheduler"]["interval"] == "step"
    clip = spec["optimizer"].get("clipGradValue")
    max_norm = spec["optimizer"].get("clipGradNorm")
    k = spec.get("accumulate", 1)
    b = spec["batch"]
    out = {"train": [], "val": [], "clipped": 0, "gradients": 0, "normClipped": 0, "steps": 0}
    for epoch in range(spec["epochs"]):
        model.train()
        order = spec["order"][epoch]
        losses = []
        starts = range(0, len(order), b)
        for i, start in enumerate(starts):
            rows = torch.tensor(order[start:start + b], dtype=torch.int64)
            if i % k == 0:
                optimizer.zero_grad()
            batch_x = x[rows]
            if augment:
                batch_x = augmented(images, batch_x, spec["augmentation"][epoch][start:start + b],
                                    dtype)
            loss = loss_fn(model(batch_x), y[rows])
            (loss / k if k != 1 else loss).backward()
            losses.append(float(loss.item()))
            if (i + 1) % k != 0 and i != len(starts) - 1:
                continue
            if clip is not None:
                for p in model.parameters():
                    out["clipped"] += int((p.grad.abs() > clip).sum())
                    out["gradients"] += p.grad.numel()
                torch.nn.utils.clip_grad_value_(model.parameters(), clip)
            if max_norm is not None:
                norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
                out["normClipped"] += int(norm > max_norm)
                out["steps"] += 1
            optimizer.step()
            if per_step:
                scheduler.step()
        if scheduler is not None and not per_step:
            scheduler.step()
        out["train"].append(sum(losses) / len(losses))
        model.eval()
        with torch.no_grad():
            val = [float(loss_fn(model(val_x[i:i + b]), val_y[i:i + b]).item())
                   for i in range(0, len(val_x), b)]
        out["val"].append(sum(val) / len(val))
    out["state"] = {k: v.detach().reshape(-1).tolist() for k, v in model.state_dict().items()}
    return out


def nudged(arrays, seed):
    """The initial weights with every float value moved by one float32 ulp up or down at random:
    a run from them shows how far float32 rounding alone carries the trajectory."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in arrays.items():
        if v.dtype == np.int64:
            out[k] = v
            continue
        v32 = v.astype(np.float32)
        up = rng.integers(0, 2, v32.shape).astype(bool)
        out[k] = np.where(up, np.nextafter(v32, np.float32(np.inf)),
                          np.nextafter(v32, np.float32(-np.inf))).astype(v.dtype)
    return out


def main():
    spec = json.load(sys.stdin)
    arrays, _ = mg.read_safetensors(spec["weights"])
    out = {"float32": run(spec, arrays, torch.float32),
           "float64": run(spec, arrays, torch.float64)}
    out["nudged"] = [run(spec, nudged(arrays, seed), torch.float32)
                     for seed in range(spec.get("nudged", 0))]
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
