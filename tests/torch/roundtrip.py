#!/usr/bin/python3
"""Safetensors round trips between the toolkit and PyTorch.

Subcommands (all print JSON on stdout; errors go to stderr with exit status 1):

  eval --variant V --weights FILE [--data DIR] [--count N]
      Loads FILE (written by the toolkit) into the seed's model V with
      load_state_dict(strict=True) and prints {"variant", "logits" (N*10, row-major), "loss",
      "labels"} for the first N (default 256) test images in eval mode.

  save --variant V --out FILE [--seed S] [--steps K] [--data DIR]
      Builds model V after torch.manual_seed(S) (default 0), optionally trains it K Adam steps
      (as make_goldens.py does), and saves its state dict as safetensors for the toolkit.

  fixture --out FILE
      Writes a file holding one tensor of every dtype (torch-made values) with the independent
      Python writer (FILE "-" writes none), and prints the tensors as JSON (I64/U64 as decimal
      strings, F16 as bit patterns, non-finite floats as "NaN"/"Infinity"/"-Infinity") with the
      file's bytes in base64 as "fileBase64".

  check --in FILE
      Reads FILE (the toolkit's encoding of the fixture) with the independent Python reader and
      compares every tensor bit for bit with freshly made fixture tensors; prints {"ok": true}.
"""

import argparse
import base64
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_goldens as mg  # noqa: E402


def fixture_arrays():
    """One array of every dtype, made with torch where torch has the dtype."""
    g = torch.Generator().manual_seed(1)
    f32 = torch.randn(3, 5, generator=g, dtype=torch.float32)
    f32[0, 0], f32[0, 1], f32[0, 2], f32[0, 3] = float("nan"), float("inf"), -float("inf"), -0.0
    return {
        "1.weight": f32.numpy(),
        "1.bias": torch.randn(5, generator=g, dtype=torch.float32).numpy(),
        "3": torch.randn(2, 3, generator=g, dtype=torch.float64).numpy(),
        "3.num_batches_tracked": torch.tensor(20, dtype=torch.int64).numpy(),
        "i64": torch.tensor([-2**63, 2**63 - 1, -1, 0, 12345678901234], dtype=torch.int64).numpy(),
        "i32": torch.tensor([[-2**31, 2**31 - 1], [-7, 0]], dtype=torch.int32).numpy(),
        "i16": torch.tensor([-32768, 32767, 5], dtype=torch.int16).numpy(),
        "i8": torch.tensor([-128, 127, 0], dtype=torch.int8).numpy(),
        "u8": torch.arange(0, 256, 37, dtype=torch.uint8).numpy(),
        "u32": np.array([0, 1, 2**32 - 1, 2**31], dtype=np.uint32),  # torch 1.13 has no uint32
        "u64": np.array([0, 2**64 - 1], dtype=np.uint64),
        "f16": torch.tensor([1.0, -2.5, 65504.0], dtype=torch.float16).numpy(),
        "mask": torch.tensor([True, False, True, True], dtype=torch.bool).numpy(),
        "empty": torch.zeros(0, 3, dtype=torch.float32).numpy(),
        "\u00fcber.weight": torch.ones(1, 1, dtype=torch.float32).numpy(),
    }


FIXTURE_METADATA = {"format": "pt", "source": "roundtrip.py"}


def to_json_value(a):
    """Array values as JSON-safe lists (see the module docstring)."""
    flat = a.reshape(-1)
    if a.dtype == np.float16:
        return flat.view(np.uint16).tolist()
    if a.dtype.kind == "f":
        return [v if math.isfinite(v) else str(v).replace("inf", "Infinity").replace("nan", "NaN")
                for v in (float(x) for x in flat)]
    if a.dtype.itemsize == 8 and a.dtype.kind in "iu":
        return [str(int(v)) for v in flat]
    return [int(v) for v in flat]


def cmd_fixture(args):
    arrays = fixture_arrays()
    data = mg.encode_safetensors(arrays, FIXTURE_METADATA)
    if args.out != "-":
        with open(args.out, "wb") as f:
            f.write(data)
    out = {}
    for name, a in arrays.items():
        dtype = mg.NUMPY_ST[np.dtype(a.dtype).newbyteorder("<").str]
        out[name] = {"dtype": dtype, "shape": list(a.shape), "data": to_json_value(a)}
    print(json.dumps({"metadata": FIXTURE_METADATA, "tensors": out,
                      "fileBase64": base64.b64encode(data).decode("ascii")}))


def cmd_check(args):
    arrays, metadata = mg.read_safetensors(args.input)
    expected = fixture_arrays()
    problems = []
    if metadata != FIXTURE_METADATA:
        problems.append(f"metadata {metadata} != {FIXTURE_METADATA}")
    if set(arrays) != set(expected):
        problems.append(f"names {sorted(arrays)} != {sorted(expected)}")
    for name in sorted(set(arrays) & set(expected)):
        got, want = arrays[name], expected[name]
        if got.dtype.newbyteorder("<") != want.dtype.newbyteorder("<") or got.shape != want.shape:
            problems.append(f"{name}: {got.dtype}{got.shape} != {want.dtype}{want.shape}")
        elif got.tobytes() != want.tobytes():
            problems.append(f"{name}: values differ: {got.reshape(-1)[:5]} != "
                            f"{want.reshape(-1)[:5]}")
    if problems:
        sys.exit("check failed: " + "; ".join(problems))
    print(json.dumps({"ok": True, "tensors": len(arrays)}))


def cmd_eval(args):
    arrays, _ = mg.read_safetensors(args.weights)
    model = mg.build_model(args.variant)
    state = {name: torch.from_numpy(a) for name, a in arrays.items()}
    model.load_state_dict(state, strict=True)
    test_x, test_y = mg.read_cifar(os.path.join(args.data, "test_batch.bin"), args.count)
    logits, loss = mg.evaluate(model, test_x, test_y)
    print(json.dumps({"variant": args.variant, "logits": logits, "loss": loss,
                      "labels": test_y.tolist()}))


def cmd_save(args):
    model = mg.build_model(args.variant, args.seed)
    losses = []
    if args.steps > 0:
        train_x, train_y = mg.read_cifar(os.path.join(args.data, "data_batch_1.bin"),
                                         args.steps * mg.BATCH)
        losses = mg.train(model, train_x, train_y, args.steps)
    mg.write_safetensors(args.out, mg.state_dict_arrays(model),
                         {"variant": args.variant, "torch": torch.__version__})
    print(json.dumps({"variant": args.variant, "out": args.out, "losses": losses}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("eval", help="load toolkit weights into PyTorch, print eval logits")
    p.add_argument("--variant", required=True, choices=mg.VARIANTS)
    p.add_argument("--weights", required=True)
    p.add_argument("--data", default=mg.DEFAULT_DATA)
    p.add_argument("--count", type=int, default=mg.BATCH)
    p.set_defaults(run=cmd_eval)
    p = sub.add_parser("save", help="save a PyTorch model's state dict as safetensors")
    p.add_argument("--variant", required=True, choices=mg.VARIANTS)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=0)
    p.add_argument("--data", default=mg.DEFAULT_DATA)
    p.set_defaults(run=cmd_save)
    p = sub.add_parser("fixture", help="write the every-dtype fixture, print it as JSON")
    p.add_argument("--out", required=True)
    p.set_defaults(run=cmd_fixture)
    p = sub.add_parser("check", help="compare a toolkit-written fixture with torch's tensors")
    p.add_argument("--in", dest="input", required=True)
    p.set_defaults(run=cmd_check)
    args = parser.parse_args()
    mg.set_deterministic()
    try:
        args.run(args)
    except (ValueError, RuntimeError, KeyError, OSError) as error:
        sys.exit(f"{args.command} failed: {error}")


if __name__ == "__main__":
    main()
