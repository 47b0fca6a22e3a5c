#!/usr/bin/env bash
# Runs on the GPU machine (no network, no Deno), from the project root, with .gpu/ carried (see
# ../shared/docs/gpu.md and bench/gpu/pack.sh): unpacks the Vulkan loader, Deno and its npm
# cache, checks the adapter, then runs the whole benchmark (which includes the timed full
# experiment, 3 variants x 200 epochs) and writes bench.json, bench.log and adapter.txt to $OUT.
set -uo pipefail
OUT=${OUT:?set OUT to the folder whose files come back}
for f in .gpu/debs/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
mkdir -p .gpu/bin && xz -dc .gpu/deno.xz > .gpu/bin/deno && chmod +x .gpu/bin/deno
[ -d .gpu/deno_dir ] || tar -C .gpu -xJf .gpu/deno_dir.tar.xz
export DENO_DIR=$PWD/.gpu/deno_dir PATH=$PWD/.gpu/bin:$PATH
if ! deno eval 'const a = await navigator.gpu.requestAdapter(); if (!a) Deno.exit(3); const i = a.info; console.log([i.vendor, i.architecture, i.device, i.description].join(" | "))' | tee "$OUT/adapter.txt"; then
  echo "no WebGPU adapter; what the loader sees:"
  ls /usr/local/nvidia/share/vulkan/icd.d/ /usr/share/vulkan/icd.d/ 2>&1
  ldconfig -p | grep vulkan
  exit 3
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader >> "$OUT/adapter.txt" 2>&1 || true
deno task bench --out "$OUT/bench.json" "$@" 2>&1 | tee "$OUT/bench.log"
