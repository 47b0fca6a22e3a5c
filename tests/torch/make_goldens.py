#!/usr/bin/python3
"""Golden values from real PyTorch for the seed's three CIFAR-10 MLPs.

For each variant (plain, bn, dropout) this builds the model exactly as the seed lecture does
(`torch.manual_seed(0)` right before construction), trains it for 20 Adam steps on the first
20 batches of 256 images of `data_batch_1.bin` (file order, no shuffling, pixels / 255), and
writes to --out:

  <variant>_init.safetensors    state dict right after construction (BN buffers included)
  <variant>_final.safetensors   state dict after the 20 steps
  <variant>_final64.safetensors the same 20 steps in float64 from the same initial weights,
                                stored as float32 (counters left out)
  <variant>.json                per-step losses, eval logits and loss on the first 256 test
                                images, the float64 run's losses and logits (losses64,
                                evalLogits64), the float32 run's distance from it (spread32:
                                per step, largest per tensor, largest logit), labels, versions,
                                and a dropout-mask cross-check

The float64 run is the reference the tests compare with: it agrees across CPUs to ~1e-12
(measured with four OpenBLAS kernels, OPENBLAS_CORETYPE), while float32 results move with the
CPU's BLAS kernels: about spread32 apart on plain and dropout, about 1% of the loss on bn, whose
training amplifies rounding. OPENBLAS_CORETYPE=Haswell reproduces the committed files.

Dropout does not use torch's RNG: each Dropout is replaced by `HashDropout`, which applies the
toolkit's counter-based mask (see `keep_mask`), so the toolkit reproduces it bit for bit.

Safetensors files are written by the minimal writer below (json + struct + numpy), which
follows the reference implementation's layout: tensors sorted by descending dtype alignment,
then by name; compact JSON header with `__metadata__` first; header padded with spaces to a
multiple of 8 bytes.

Usage: /usr/bin/python3 tests/torch/make_goldens.py --out tests/goldens [--data DIR]
       [--variants plain,bn,dropout] [--compare tests/goldens]
"""

import argparse
import json
import os
import struct
import sys

import numpy as np
import torch
from torch import nn

BATCH = 256
STEPS = 20
LR = 1e-3
VARIANTS = ("plain", "bn", "dropout")
DEFAULT_DATA = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "shared", "data",
    "cifar-10-batches-bin")

# ---------------------------------------------------------------------------------------------
# Deterministic dropout mask (lowbias32 hash; all arithmetic mod 2^32, done in uint64 + mask).

M32 = np.uint64(0xFFFFFFFF)


def lowbias32(x):
    """lowbias32 on a uint64 array holding uint32 values; returns uint64 values < 2^32."""
    x = np.asarray(x, dtype=np.uint64) & M32
    x = x ^ (x >> np.uint64(16))
    x = (x * np.uint64(0x7FEB352D)) & M32
    x = x ^ (x >> np.uint64(15))
    x = (x * np.uint64(0x846CA68B)) & M32
    x = x ^ (x >> np.uint64(16))
    return x


def mask_key(seed, step, layer):
    """key = hash(seed ^ hash(step ^ hash(layer)))."""
    h_layer = lowbias32(np.uint64(layer))
    h_step = lowbias32(np.uint64(step) ^ h_layer)
    return lowbias32(np.uint64(seed) ^ h_step)


def keep_mask(seed, step, layer, rows, cols, p):
    """Boolean [rows, cols] mask.

    Element i = row*cols + col is kept when (hash(i ^ key) >> 8) · 2⁻²⁴ ≥ p.
    """
    key = mask_key(seed, step, layer)
    index = np.arange(rows * cols, dtype=np.uint64)
    bits = lowbias32(index ^ key)
    u = (bits >> np.uint64(8)).astype(np.float64) * 2.0**-24
    return (u >= p).reshape(rows, cols)


class HashDropout(nn.Module):
    """Inverted dropout with the toolkit's mask: y = x · keep / (1 − p) in train, x in eval.

    `step` counts this module's training-mode forward calls; each Dropout runs once per model
    forward, so it equals the model's count of training-mode forward calls.
    """

    def __init__(self, p, layer, seed=0):
        super().__init__()
        self.p, self.layer, self.seed, self.step = p, layer, seed, 0

    def forward(self, x):
        if not self.training:
            return x
        rows, cols = x.shape
        keep = keep_mask(self.seed, self.step, self.layer, rows, cols, self.p)
        self.step += 1
        scale = torch.from_numpy(keep.astype(np.float32)) * (1.0 / (1.0 - self.p))
        return x * scale

    def extra_repr(self):
        return f"p={self.p}, layer={self.layer}, seed={self.seed}"


# ---------------------------------------------------------------------------------------------
# Models


def build_model(variant, seed=0):
    """The seed's model for `variant`, built right after torch.manual_seed(seed)."""
    torch.manual_seed(seed)
    if variant == "plain":
        layers = [nn.Flatten(), nn.Linear(3072, 128), nn.LeakyReLU(), nn.Linear(128, 128),
                  nn.LeakyReLU(), nn.Linear(128, 10)]
    elif variant == "bn":
        layers = [nn.Flatten(), nn.Linear(3072, 128), nn.LeakyReLU(), nn.BatchNorm1d(128),
                  nn.Linear(128, 128), nn.LeakyReLU(), nn.BatchNorm1d(128), nn.Linear(128, 10)]
    elif variant == "dropout":
        # nn.Dropout draws no random numbers at construction, so the weights equal the seed's.
        layers = [nn.Flatten(), nn.Linear(3072, 128), nn.LeakyReLU(), nn.Dropout(0.5),
                  nn.Linear(128, 128), nn.LeakyReLU(), nn.Dropout(0.5), nn.Linear(128, 10)]
        layers = [HashDropout(m.p, i) if isinstance(m, nn.Dropout) else m
                  for i, m in enumerate(layers)]
    else:
        raise ValueError(f"Cannot build model: unknown variant {variant!r} (expected one of "
                         f"{', '.join(VARIANTS)})")
    return nn.Sequential(*layers).float()


# ---------------------------------------------------------------------------------------------
# CIFAR-10


def read_cifar(path, count):
    """The first `count` records of a CIFAR-10 .bin file: (float32 [count, 3072], int64 [count])."""
    records = np.fromfile(path, dtype=np.uint8, count=count * 3073)
    if records.size != count * 3073:
        raise ValueError(f"Cannot read {path!r}: need {count} records of 3073 bytes, file has "
                         f"{records.size} bytes")
    records = records.reshape(count, 3073)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        bad = int(np.argmax(labels > 9))
        raise ValueError(f"Cannot read {path!r}: record {bad} has label {labels[bad]} "
                         "(expected 0-9)")
    pixels = records[:, 1:].astype(np.float32) / np.float32(255.0)
    return torch.from_numpy(pixels), torch.from_numpy(labels)


# ---------------------------------------------------------------------------------------------
# Minimal safetensors I/O (json + struct + numpy)

# Reference dtype order (increasing alignment); files list tensors by descending order, then name.
ST_ORDER = ["BOOL", "U8", "I8", "I16", "U16", "F16", "BF16", "I32", "U32", "F32", "F64", "I64",
            "U64"]
ST_NUMPY = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "I16": np.int16, "U16": np.uint16,
            "F16": np.float16, "I32": np.int32, "U32": np.uint32, "F32": np.float32,
            "F64": np.float64, "I64": np.int64, "U64": np.uint64}
NUMPY_ST = {np.dtype(v).str: k for k, v in ST_NUMPY.items()}


def encode_safetensors(arrays, metadata=None):
    """The bytes of a safetensors file holding `arrays` (name -> numpy array)."""
    items = []
    for name, a in arrays.items():
        # np.require keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-d).
        a = np.require(a, dtype=a.dtype.newbyteorder("<"), requirements="C")
        items.append((name, NUMPY_ST[a.dtype.str], a))
    items.sort(key=lambda t: (-ST_ORDER.index(t[1]), t[0]))
    header = {}
    if metadata:
        header["__metadata__"] = dict(sorted(metadata.items()))
    offset = 0
    for name, dtype, a in items:
        header[name] = {"dtype": dtype, "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(a.tobytes() for _, _, a in items)


def decode_safetensors(data):
    """(dict name -> numpy array, metadata dict) from the bytes of a safetensors file."""
    if len(data) < 8:
        raise ValueError(f"Cannot read safetensors: {len(data)} bytes is shorter than the header")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"Cannot read safetensors: header length {n} exceeds the file")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    buffer = data[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    arrays, spans = {}, []
    for name, info in header.items():
        begin, end = info["data_offsets"]
        dtype = np.dtype(ST_NUMPY[info["dtype"]]).newbyteorder("<")
        numel = int(np.prod(info["shape"], dtype=np.int64))
        if end - begin != numel * dtype.itemsize or not 0 <= begin <= end <= len(buffer):
            raise ValueError(f"Cannot read safetensors: tensor {name!r} has bad data_offsets "
                             f"{[begin, end]}")
        spans.append((begin, end))
        arrays[name] = np.frombuffer(buffer[begin:end], dtype=dtype).reshape(info["shape"]).copy()
    position = 0
    for begin, end in sorted(spans):
        if begin != position:
            raise ValueError(f"Cannot read safetensors: data not contiguous at byte {begin}")
        position = end
    if position != len(buffer):
        raise ValueError(f"Cannot read safetensors: {len(buffer) - position} bytes after the data")
    return arrays, metadata


def state_dict_arrays(model):
    """The state dict as numpy arrays (float32 parameters and buffers, int64 counters)."""
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


def write_safetensors(path, arrays, metadata=None):
    with open(path, "wb") as f:
        f.write(encode_safetensors(arrays, metadata))


def read_safetensors(path):
    with open(path, "rb") as f:
        return decode_safetensors(f.read())


# ---------------------------------------------------------------------------------------------
# Training


def as_floats(t):
    """A float32 tensor as a list of Python floats (exact float64 of each float32)."""
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def train(model, train_x, train_y, steps):
    """`steps` Adam steps on consecutive batches of BATCH images; returns the losses."""
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    losses = []
    for s in range(steps):
        x, y = train_x[s * BATCH:(s + 1) * BATCH], train_y[s * BATCH:(s + 1) * BATCH]
        logits = model(x)
        optimizer.zero_grad()
        loss = loss_fn(logits, y)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.item()))
    return losses


def evaluate(model, test_x, test_y):
    """Eval-mode logits (list of floats, row-major) and mean cross-entropy loss."""
    model.eval()
    with torch.no_grad():
        logits = model(test_x)
        loss = float(nn.CrossEntropyLoss()(logits, test_y).item())
    return as_floats(logits), loss


def run_variant(variant, train_x, train_y, test_x, test_y, out):
    model = build_model(variant)
    init = state_dict_arrays(model)
    reference = float64_twin(variant, model, train_x, train_y, test_x, test_y)
    losses = train(model, train_x, train_y, STEPS)
    logits, eval_loss = evaluate(model, test_x, test_y)
    meta = {"variant": variant, "torch": torch.__version__}
    write_safetensors(os.path.join(out, f"{variant}_init.safetensors"), init, meta)
    final = state_dict_arrays(model)
    write_safetensors(os.path.join(out, f"{variant}_final.safetensors"), final, meta)
    # How far PyTorch's own float32 run lands from the float64 run: the tests' yardstick for how
    # far a float32 implementation may land from float64 (bn's training amplifies rounding noise).
    spread = {
        "losses": [abs(a - b) for a, b in zip(losses, reference["losses"])],
        "weights": {k: float(np.max(np.abs(final[k].astype(np.float64) - reference["final"][k])))
                    for k in final if final[k].dtype != np.int64},
        "evalLogits": float(np.max(np.abs(np.array(logits) - np.array(reference["evalLogits"])))),
    }
    write_safetensors(os.path.join(out, f"{variant}_final64.safetensors"),
                      {k: v.astype(np.float32) for k, v in reference["final"].items()
                       if v.dtype != np.int64}, meta)
    return losses, logits, eval_loss, reference, spread


def float64_twin(variant, model32, train_x, train_y, test_x, test_y):
    """The same run in float64 from the same initial weights: losses, final state, eval logits."""
    model = build_model(variant).double()
    model.load_state_dict({k: v.double() if v.is_floating_point() else v
                           for k, v in model32.state_dict().items()})
    losses = train(model, train_x.double(), train_y, STEPS)
    logits, _ = evaluate(model, test_x.double(), test_y)
    final = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    return {"losses": losses, "final": final, "evalLogits": logits}


def set_deterministic():
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)


def mask_check():
    """First 64 mask bits for two (seed, step, layer) keys, and a few raw hash values."""
    hash_inputs = [0, 1, 2, 3, 255, 12345, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]
    cases = [{"seed": 0, "step": 0, "layer": 3, "p": 0.5},
             {"seed": 7, "step": 5, "layer": 6, "p": 0.5}]
    for case in cases:
        bits = keep_mask(case["seed"], case["step"], case["layer"], 1, 64, case["p"]).reshape(-1)
        case["keep"] = [int(b) for b in bits]
        case["key"] = int(mask_key(case["seed"], case["step"], case["layer"]))
    return {"hashInputs": hash_inputs, "hashOutputs": [int(v) for v in lowbias32(hash_inputs)],
            "cases": cases}


def max_abs(a, b):
    """Largest |a − b| over two equal-length sequences or arrays, in float64 (0 when empty)."""
    diff = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return float(diff.max()) if diff.size else 0.0


def compare(out, reference, variants):
    """How far the goldens in `out` land from those in `reference`, per variant.

    Largest absolute differences of the float32 results and of the float64 results (losses,
    eval logits, each tensor), of the initial weights and of the counters, each tensor's largest
    magnitude in the reference's float64 file, and whether every file is byte-identical.
    """
    report = {}
    for v in variants:
        with open(os.path.join(out, f"{v}.json")) as f:
            new = json.load(f)
        with open(os.path.join(reference, f"{v}.json")) as f:
            old = json.load(f)
        identical = new == old
        files = {}
        for kind in ("init", "final", "final64"):
            name = f"{v}_{kind}.safetensors"
            with open(os.path.join(out, name), "rb") as f:
                new_bytes = f.read()
            with open(os.path.join(reference, name), "rb") as f:
                old_bytes = f.read()
            identical = identical and new_bytes == old_bytes
            a, _ = decode_safetensors(new_bytes)
            b, _ = decode_safetensors(old_bytes)
            if sorted(a) != sorted(b):
                raise ValueError(f"Cannot compare {name}: names {sorted(a)} != {sorted(b)}")
            files[kind] = (a, b)
        init_new, init_old = files["init"]
        final_new, final_old = files["final"]
        final64_new, final64_old = files["final64"]
        floats = [k for k in final_old if final_old[k].dtype != np.int64]
        report[v] = {
            "lossCount": len(new["losses"]), "logitsCount": len(new["evalLogits"]),
            "init": max(max_abs(init_new[k], init_old[k]) for k in init_old),
            "counters": max([max_abs(final_new[k], final_old[k]) for k in final_old
                             if final_old[k].dtype == np.int64], default=0.0),
            "float32": {"losses": max_abs(new["losses"], old["losses"]),
                        "evalLogits": max_abs(new["evalLogits"], old["evalLogits"]),
                        "weights": {k: max_abs(final_new[k], final_old[k]) for k in floats}},
            "float64": {"losses": max_abs(new["losses64"], old["losses64"]),
                        "evalLogits": max_abs(new["evalLogits64"], old["evalLogits64"]),
                        "weights": {k: max_abs(final64_new[k], final64_old[k]) for k in floats},
                        "scales": {k: float(np.abs(final64_old[k]).max()) for k in floats}},
            "identical": identical,
        }
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the golden files")
    parser.add_argument("--data", default=DEFAULT_DATA, help="cifar-10-batches-bin folder")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--compare", metavar="DIR",
                        help="after writing, compare with the goldens in DIR; print a JSON report "
                             "as the last line")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            parser.error(f"unknown variant {v!r} (expected one of {', '.join(VARIANTS)})")

    set_deterministic()
    os.makedirs(args.out, exist_ok=True)
    train_x, train_y = read_cifar(os.path.join(args.data, "data_batch_1.bin"), STEPS * BATCH)
    test_x, test_y = read_cifar(os.path.join(args.data, "test_batch.bin"), BATCH)
    check = mask_check()

    for variant in variants:
        losses, logits, eval_loss, reference, spread = run_variant(
            variant, train_x, train_y, test_x, test_y, args.out)
        golden = {"variant": variant, "batchSize": BATCH, "steps": STEPS, "lr": LR,
                  "losses": losses, "evalLogits": logits, "evalLoss": eval_loss,
                  "losses64": reference["losses"], "evalLogits64": reference["evalLogits"],
                  "spread32": spread,
                  "evalLabels": test_y.tolist(), "trainLabelsFirst": train_y[:8].tolist(),
                  "torch": torch.__version__, "maskCheck": check}
        with open(os.path.join(args.out, f"{variant}.json"), "w") as f:
            json.dump(golden, f)
            f.write("\n")
        print(f"{variant:8s} loss {losses[0]:.4f} -> {losses[-1]:.4f}  eval loss {eval_loss:.4f}")
    print(f"wrote {len(variants)} variant(s) to {args.out} (torch {torch.__version__})")
    if args.compare:
        print(json.dumps(compare(args.out, args.compare, variants)))


if __name__ == "__main__":
    sys.exit(main())
