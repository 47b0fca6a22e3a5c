"""Peer benchmark: the seed's three MLPs in PyTorch on the CPU.

Same models, optimizer and data shape as the toolkit's bench: Flatten, Linear(3072, 128),
LeakyReLU(0.01), [BatchNorm1d(128) | Dropout(0.5)], Linear(128, 128), LeakyReLU,
[BatchNorm1d | Dropout], Linear(128, 10); CrossEntropyLoss (mean) on logits; Adam lr 1e-3;
synthetic uint8/255 images and random labels created before timing. Each round times `steps`
training steps, then `steps` forwards in eval mode under no_grad; the result is the median.
Each variant's result also carries its trainable parameter count, a fact a caller can check.

Which BLAS backs torch matters 20x on Debian: python3-torch links the generic libblas.so.3,
which is the reference BLAS unless an optimised one (libopenblas0-pthread) is installed and
selected by update-alternatives. We report the shared library actually loaded (from
/proc/self/maps) and a measured sgemm rate, so the caller can warn when it is the slow one.
OPENBLAS_* variables are left as they are.

Usage: python3 bench/peers/torch_mlp.py --json [--threads 2] [--batch 1024] [--warmup 3]
       [--steps 10] [--rounds 3] [--variant all|plain|bn|dropout]
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch

VARIANTS = ("plain", "bn", "dropout")

# Below this sgemm rate torch is almost certainly on the reference BLAS (measured ~3 GFLOP/s
# there, 140-330 with OpenBLAS on the same 2 cores).
SLOW_BLAS_GFLOPS = 20.0


def build_model(variant):
    """The seed's MLP for one variant."""
    layers = [torch.nn.Flatten()]
    width_in = 3 * 32 * 32
    for _ in range(2):
        layers += [torch.nn.Linear(width_in, 128), torch.nn.LeakyReLU(0.01)]
        if variant == "bn":
            layers.append(torch.nn.BatchNorm1d(128, eps=1e-5, momentum=0.1))
        elif variant == "dropout":
            layers.append(torch.nn.Dropout(0.5))
        width_in = 128
    layers.append(torch.nn.Linear(128, 10))
    return torch.nn.Sequential(*layers)


def blas_libraries():
    """Basenames of the BLAS/LAPACK shared objects mapped into this process."""
    names = set()
    with open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            path = line.split()[-1]
            base = os.path.basename(path)
            if path.startswith("/") and ("blas" in base or "lapack" in base or "mkl" in base):
                names.add(os.path.realpath(path))
    return sorted(names)


def sgemm_gflops(repeats=20):
    """GFLOP/s of C[1024x128] = X[1024x3072] . W[3072x128], the seed's first layer."""
    x = torch.rand(1024, 3072)
    w = torch.rand(3072, 128)
    torch.mm(x, w)  # loads the library and warms caches
    t0 = time.perf_counter()
    for _ in range(repeats):
        torch.mm(x, w)
    seconds = time.perf_counter() - t0
    return 2 * 1024 * 3072 * 128 * repeats / seconds / 1e9


def blas_info():
    """A short description of the BLAS in use: build setting, loaded library, sgemm rate."""
    config = torch.__config__.show()
    build = "unknown"
    for part in config.replace("\n", ",").split(","):
        if "BLAS_INFO=" in part:
            build = part.strip().split("=", 1)[1]
    gflops = sgemm_gflops()
    libs = blas_libraries()
    if any("openblas" in lib for lib in libs):
        kind = "openblas"
    elif any("mkl" in lib for lib in libs):
        kind = "mkl"
    elif any("blas" in lib for lib in libs):
        kind = "reference" if gflops < SLOW_BLAS_GFLOPS else "other"
    else:
        kind = "unknown"
    return {
        "kind": kind,
        "build": build,
        "libraries": libs,
        "sgemm_gflops": round(gflops, 1),
        "slow": gflops < SLOW_BLAS_GFLOPS,
    }


def synthetic_batches(count, batch):
    """Random uint8/255 images [batch, 3, 32, 32] and labels in 0-9."""
    return [
        (
            torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8).float() / 255,
            torch.randint(0, 10, (batch,)),
        )
        for _ in range(count)
    ]


def bench_variant(variant, args):
    """Median train and eval samples/s for one variant."""
    torch.manual_seed(0)
    model = build_model(variant)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    batches = synthetic_batches(2, args.batch)
    step = 0

    def train_steps(n):
        nonlocal step
        model.train()
        t0 = time.perf_counter()
        for _ in range(n):
            x, y = batches[step % len(batches)]
            step += 1
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        loss.item()
        return time.perf_counter() - t0

    def eval_steps(n):
        nonlocal step
        model.eval()
        t0 = time.perf_counter()
        with torch.no_grad():
            for _ in range(n):
                x, _ = batches[step % len(batches)]
                step += 1
                out = model(x)
        out.sum().item()
        return time.perf_counter() - t0

    train_steps(max(1, args.warmup))
    eval_steps(max(1, args.warmup))
    train_rates, eval_rates = [], []
    for _ in range(args.rounds):
        train_rates.append(args.steps * args.batch / train_steps(args.steps))
        eval_rates.append(args.steps * args.batch / eval_steps(args.steps))
    return {
        "params": sum(p.numel() for p in model.parameters()),
        "train": round(statistics.median(train_rates)),
        "eval": round(statistics.median(eval_rates)),
    }


def positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1: current value is {text}")
    return value


def non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0: current value is {text}")
    return value


def main(argv):
    parser = argparse.ArgumentParser(description="PyTorch CPU peer for the wgnn bench.")
    parser.add_argument("--json", action="store_true", help="print one JSON line (default)")
    parser.add_argument("--variant", choices=VARIANTS + ("all",), default="all")
    parser.add_argument("--threads", type=positive, default=2)
    parser.add_argument("--batch", type=positive, default=1024)
    parser.add_argument("--warmup", type=non_negative, default=3)
    parser.add_argument("--steps", type=positive, default=10)
    parser.add_argument("--rounds", type=positive, default=3)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    variants = VARIANTS if args.variant == "all" else (args.variant,)
    report = {
        "torch": torch.__version__,
        "blas": blas_info(),
        "threads": torch.get_num_threads(),
        "results": {variant: bench_variant(variant, args) for variant in variants},
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1:])
