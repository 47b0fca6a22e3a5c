#!/usr/bin/env bash
# Runs on the GPU machine (no network, no Deno), from the project root, with .gpu/ carried (see
# ../shared/docs/gpu.md and bench/gpu/pack.sh): unpacks the Vulkan loader, Deno and its npm
# cache, checks the adapter, then runs the whole benchmark (which includes the timed full
# experiment, 3 variants x 200 epochs), then the kernel, layer and PyTorch-parity tests on this
# adapter; writes adapter.txt, bench.json, bench.log and test.log to $OUT.
set -uo pipefail
OUT=${OUT:?set OUT to the folder whose files come back}
for f in .gpu/debs/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
mkdir -p .gpu/bin && xz -dc .gpu/deno.xz > .gpu/bin/deno && chmod +x .gpu/bin/deno
[ -d .gpu/deno_dir ] || tar -C .gpu -xJf .gpu/deno_dir.tar.xz
[ -d .gpu/parity ] || [ ! -f .gpu/parity.tar.xz ] || tar -C .gpu -xJf .gpu/parity.tar.xz
export DENO_DIR=$PWD/.gpu/deno_dir PATH=$PWD/.gpu/bin:$PATH
if ! deno eval 'const a = await navigator.gpu.requestAdapter(); if (!a) Deno.exit(3); const i = a.info; console.log([i.vendor, i.architecture, i.device, i.description].join(" | "))' | tee "$OUT/adapter.txt"; then
  echo "no WebGPU adapter; what the loader sees:"
  ls /usr/local/nvidia/share/vulkan/icd.d/ /usr/share/vulkan/icd.d/ 2>&1
  ldconfig -p | grep vulkan
  exit 3
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> "$OUT/adapter.txt" 2>&1 || true
deno task bench --out "$OUT/bench.json" "$@" 2>&1 | tee "$OUT/bench.log"
# Correctness on this adapter: every kernel against its float64 twin, and the three models against
# PyTorch's committed goldens (the records they need travel in .gpu/parity).
WGNN_PARITY_DATA=.gpu/parity deno test --allow-read --allow-write --allow-env --allow-run \
  tests/matmul_test.ts tests/layers_test.ts tests/optim_test.ts tests/staging_test.ts \
  tests/parity_test.ts tests/encode_ahead_test.ts tests/concurrent_test.ts \
  tests/bind_cache_test.ts 2>&1 | tee "$OUT/test.log" | tail -5
