#!/usr/bin/env bash
# Packs .gpu/ for the GPU machine, after `bash ../shared/tools/gpu-prepare.sh`: Deno's npm cache
# is 121 MiB unpacked (TensorFlow.js alone is 100 MiB) and what travels must stay under 64 MiB,
# so the source maps go and the cache travels as one xz archive (about 6 MiB), which
# bench/gpu/run.sh unpacks there. Run from the project root.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
[ -d .gpu/deno_dir ] || { echo "pack: no .gpu/deno_dir: run bash ../shared/tools/gpu-prepare.sh first" >&2; exit 2; }
find .gpu/deno_dir -name '*.map' -delete
# The CIFAR-10 records the parity tests read (20 batches of 256 training images, 256 test images,
# 128 of data_batch_2), so run.sh can check PyTorch parity there: about 17 MB, not the 180 MB set.
src=../shared/data/cifar-10-batches-bin
if [ -f "$src/data_batch_1.bin" ]; then
  dst=.gpu/parity/cifar-10-batches-bin
  mkdir -p "$dst"
  head -c $((5120 * 3073)) "$src/data_batch_1.bin" > "$dst/data_batch_1.bin"
  head -c $((128 * 3073)) "$src/data_batch_2.bin" > "$dst/data_batch_2.bin"
  head -c $((256 * 3073)) "$src/test_batch.bin" > "$dst/test_batch.bin"
  tar -C .gpu -cf - parity | xz -T2 -6 > .gpu/parity.tar.xz
  rm -rf .gpu/parity
fi
tar -C .gpu -cf - deno_dir | xz -T2 -6 > .gpu/deno_dir.tar.xz.tmp
mv .gpu/deno_dir.tar.xz.tmp .gpu/deno_dir.tar.xz
rm -rf .gpu/deno_dir .gpu/bin
du -sh .gpu
total=$(du -sk .gpu | cut -f1)
[ "$total" -lt $((60 * 1024)) ] || { echo "pack: .gpu is ${total} KiB, over the 64 MiB that may travel" >&2; exit 1; }
echo "packed: run on the device with carry [\".gpu\"]: bash bench/gpu/run.sh"
