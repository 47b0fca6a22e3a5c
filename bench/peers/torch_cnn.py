"""Peer: the experiment's `cnn` recipe (lib/nn/cnn.ts) in PyTorch on the CPU.

The same network (Unflatten to [3, 32, 32]; three stages of two Conv2d(3x3, padding 1, no bias)
+ BatchNorm2d + ReLU and a MaxPool2d(2), widths 32/64/128; AdaptiveAvgPool2d(1), Flatten,
Linear(128, 10)), the same recipe (SGD lr peak 0.1 through OneCycleLR per step with pct_start
0.25 and momentum not cycled, Nesterov momentum 0.9, weight decay 5e-4 on the parameters of rank
> 1 only, CrossEntropyLoss with label smoothing 0.1, random horizontal flips and crops of the
image zero-padded by 4), on the real CIFAR-10 binaries, normalised with the training set's
channel means and stds as the toolkit's loader is. Its own random draws: the toolkit's run and
this one share the recipe, not the bits.

Two uses:
  --train: the recipe's accuracy, the reference the toolkit's recorded run is held against.
      Prints one JSON line per epoch: {"epoch", "train_loss", "test_loss", "test_accuracy",
      "seconds"}.
  --speed: train and eval samples/s of the network at a batch size (synthetic data), JSON.

Usage: python3 bench/peers/torch_cnn.py --train --data DIR [--epochs 12] [--threads 2]
       python3 bench/peers/torch_cnn.py --speed [--batch 256] [--steps 5] [--warmup 1]
       [--rounds 1] [--threads 2]
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from torch import nn

WIDTHS = (32, 64, 128)
RECIPE = {"epochs": 12, "batch": 256, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4,
          "label_smoothing": 0.1, "pct_start": 0.25, "crop": 4}


def build_model(classes=10):
    """The recipe's network, as cnnModel() builds it."""
    layers = [nn.Unflatten(1, (3, 32, 32))]
    cin = 3
    for width in WIDTHS:
        for _ in range(2):
            layers += [nn.Conv2d(cin, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU()]
            cin = width
        layers.append(nn.MaxPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def optimizer_for(model, lr):
    """SGD Nesterov, weight decay on the weights of rank > 1 only (as cnnOptimizer)."""
    params = list(model.parameters())
    return torch.optim.SGD([
        {"params": [p for p in params if p.dim() > 1], "weight_decay": RECIPE["weight_decay"]},
        {"params": [p for p in params if p.dim() <= 1], "weight_decay": 0.0},
    ], lr=lr, momentum=RECIPE["momentum"], nesterov=True)


def read_cifar(folder):
    """(train_x uint8 [50000, 3072], train_y, test_x, test_y) from the binary batches."""
    def read(names):
        raw = np.concatenate([np.fromfile(os.path.join(folder, n), dtype=np.uint8) for n in names])
        raw = raw.reshape(-1, 3073)
        return raw[:, 1:], raw[:, 0].astype(np.int64)
    train = read([f"data_batch_{i}.bin" for i in range(1, 6)])
    test = read(["test_batch.bin"])
    return train + test


def augment(x, crop, gen):
    """Random crops of the zero-padded images and horizontal flips, per image."""
    n = len(x)
    padded = nn.functional.pad(x, (crop, crop, crop, crop))
    dx = torch.randint(0, 2 * crop + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * crop + 1, (n,), generator=gen)
    flip = torch.randint(0, 2, (n,), generator=gen).bool()
    out = torch.empty_like(x)
    for i in range(n):
        w = padded[i, :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
        out[i] = w.flip(-1) if flip[i] else w
    return out


def train(args):
    tx, ty, vx, vy = read_cifar(args.data)
    tx = torch.from_numpy(tx).float().div_(255).reshape(-1, 3, 32, 32)
    vx = torch.from_numpy(vx).float().div_(255).reshape(-1, 3, 32, 32)
    mean = tx.mean(dim=(0, 2, 3), keepdim=True)
    std = tx.std(dim=(0, 2, 3), keepdim=True)
    ty, vy = torch.from_numpy(ty), torch.from_numpy(vy)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    model = build_model()
    opt = optimizer_for(model, RECIPE["lr"])
    b = RECIPE["batch"]
    steps = args.epochs * ((len(tx) + b - 1) // b)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, RECIPE["lr"], total_steps=steps,
                                                pct_start=RECIPE["pct_start"],
                                                cycle_momentum=False)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=RECIPE["label_smoothing"])
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(len(tx), generator=gen)
        total, batches = 0.0, 0
        for i in range(0, len(tx), b):
            rows = order[i:i + b]
            x = (augment(tx[rows], RECIPE["crop"], gen) - mean) / std
            loss = loss_fn(model(x.reshape(len(rows), -1)), ty[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss)
            batches += 1
        model.eval()
        correct, test_loss, test_batches = 0, 0.0, 0
        with torch.no_grad():
            for i in range(0, len(vx), 1000):
                logits = model(((vx[i:i + 1000] - mean) / std).reshape(-1, 3072))
                test_loss += float(nn.functional.cross_entropy(logits, vy[i:i + 1000]))
                test_batches += 1
                correct += int((logits.argmax(1) == vy[i:i + 1000]).sum())
        print(json.dumps({"epoch": epoch, "train_loss": total / batches,
                          "test_loss": test_loss / test_batches,
                          "test_accuracy": correct / len(vx),
                          "seconds": round(time.perf_counter() - start, 1)}), flush=True)


def speed(args):
    """Median train and eval samples/s of `rounds` rounds of `steps` steps after `warmup`."""
    import statistics  # pylint: disable=import-outside-toplevel
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from torch_mlp import blas_info  # pylint: disable=import-outside-toplevel
    torch.manual_seed(0)
    model = build_model()
    opt = optimizer_for(model, 0.01)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=RECIPE["label_smoothing"])
    x = torch.randint(0, 256, (args.batch, 3072), dtype=torch.uint8).float() / 255
    y = torch.randint(0, 10, (args.batch,))

    def train_steps(n):
        model.train()
        start = time.perf_counter()
        for _ in range(n):
            loss = loss_fn(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        loss.item()
        return args.batch * n / (time.perf_counter() - start)

    def eval_steps(n):
        model.eval()
        start = time.perf_counter()
        with torch.no_grad():
            for _ in range(n):
                out = model(x)
        out.sum().item()
        return args.batch * n / (time.perf_counter() - start)

    train_steps(max(1, args.warmup))
    eval_steps(max(1, args.warmup))
    train_rates, eval_rates = [], []
    for _ in range(args.rounds):
        train_rates.append(train_steps(args.steps))
        eval_rates.append(eval_steps(args.steps))
    print(json.dumps({"torch": torch.__version__, "blas": blas_info(), "batch": args.batch,
                      "threads": torch.get_num_threads(),
                      "params": sum(p.numel() for p in model.parameters()),
                      "train": statistics.median(train_rates),
                      "eval": statistics.median(eval_rates)}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--train", action="store_true")
    p.add_argument("--speed", action="store_true")
    p.add_argument("--data", default="../shared/data/cifar-10-batches-bin")
    p.add_argument("--epochs", type=int, default=RECIPE["epochs"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=RECIPE["batch"])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.train == args.speed:
        sys.exit("torch_cnn.py: give one of --train or --speed")
    (train if args.train else speed)(args)


if __name__ == "__main__":
    main()
