/**
 * A fingerprint of one fixed training run, for showing that a refactor changed no number:
 * trains the lecture's three variants for 3 epochs (batch 64, Adam, augmentation on, seed 7) on
 * seeded synthetic images through `runExperiment`, and prints per variant a SHA-256 of every
 * committed tensor (weights, BatchNorm statistics, optimizer state) and one of the losses,
 * accuracies and confusion matrix. Run it in a checkout of each commit and compare the lines:
 *
 *   git worktree add /tmp/before <commit>
 *   deno run -A bench/run_hash.ts /tmp/before   # the tree to fingerprint (default: this one)
 *
 * Results are deterministic on one machine; another CPU's software adapter may round
 * differently, so compare fingerprints made on the same machine.
 *
 * @module
 */

const repo = new URL(`${Deno.args[0] ?? "."}/`, `file://${Deno.cwd()}/`).href;
const { requestGpu } = await import(`${repo}lib/gpu/device.ts`);
const { runExperiment, VARIANTS } = await import(`${repo}lib/train/experiment.ts`);
const { CLASS_NAMES } = await import(`${repo}lib/data/cifar10.ts`);
const { randomImages } = await import(`${repo}tests/fixtures/random.ts`);
// safetensors moved from lib/nn/ to lib/io/; older trees have it in lib/nn/.
const safetensors = await import(`${repo}lib/io/safetensors.ts`).catch(() =>
  import(`${repo}lib/nn/safetensors.ts`)
);

interface Tensor {
  data: ArrayBufferView;
}
interface Epoch {
  trainLoss: number;
  valLoss?: number;
  valAccuracy?: number;
}

async function hex(bytes: Uint8Array): Promise<string> {
  const hash = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  return Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join("").slice(0, 16);
}

const gpu = await requestGpu();
const out = await Deno.makeTempDir({ prefix: "wgnn-run-hash-" });
try {
  await runExperiment(gpu, {
    variants: VARIANTS,
    epochs: 3,
    batchSize: 64,
    lr: 1e-3,
    optimizer: "adam",
    seed: 7,
    validationFreq: 1,
    dataDir: "",
    data: { train: randomImages(320, 1), test: randomImages(96, 2), classes: [...CLASS_NAMES] },
    outDir: out,
    progress: false,
    augment: true,
  });
  for (const variant of VARIANTS as string[]) {
    const file = safetensors.decodeSafetensors(
      await Deno.readFile(`${out}/${variant}/resume.safetensors`),
    );
    const tensors = [...file.tensors as Map<string, Tensor>].sort(([a], [b]) => a < b ? -1 : 1);
    const each = await Promise.all(
      tensors.map(async ([name, t]) =>
        name + (await hex(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)))
      ),
    );
    const history = JSON.parse(await Deno.readTextFile(`${out}/${variant}/history.json`));
    const curves = history.epochs.map((e: Epoch) => [e.trainLoss, e.valLoss, e.valAccuracy]);
    const text = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    console.log(
      `${variant.padEnd(8)} tensors ${await hex(text(each))}  curves ${await hex(
        text([curves, history.confusion]),
      )}`,
    );
  }
} finally {
  await Deno.remove(out, { recursive: true });
}
Deno.exit(0); // the GPU runtime keeps timers alive
