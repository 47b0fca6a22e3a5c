/**
 * `deno task train`: trains the seed's MLP variants on CIFAR-10 and writes, per variant,
 * history.json/csv, best.safetensors and last.safetensors under --out, then a summary table.
 */

import { requestGpu } from "../lib/gpu/device.ts";
import {
  adapterVectorWidth,
  chooseVectorWidth,
  readCpuFlags,
  useLavapipeVectorWidth,
} from "../lib/gpu/lavapipe.ts";
import { join } from "node:path";
import { DATASET_FILES, findBatchesDir, isPermissionError } from "../lib/data/cifar10.ts";
import {
  checkWritableDir,
  nonNegativeInt,
  nonNegativeNumber,
  oneOf,
  parseFlags,
  plural,
  positiveInt,
  positiveNumber,
  runMain,
  scriptArgs,
  UsageError,
} from "../lib/cli/args.ts";
import {
  CNN_RECIPE,
  type ExperimentPlan,
  type ModelName,
  OPTIMIZERS,
  planExperiment,
  runExperiment,
  sideBySide,
  VARIANTS,
} from "../lib/train/experiment.ts";
import { checkpointsIdle } from "../lib/train/checkpoint.ts";
import { formatSummary } from "../lib/train/summary.ts";
import { matmulVariant, slowAdapterHint } from "../lib/ops/matmul_trial.ts";

const HELP = `Usage: deno task train [options]

Trains the lecture's three MLPs (plain, bn, dropout) on CIFAR-10 with WebGPU, or the
convolutional recipe (cnn).

  --model plain|bn|dropout|cnn|all   what to train (default all: the lecture's three MLPs)
  --epochs N                     epochs (default 200, as the lecture; cnn: ${CNN_RECIPE.epochs})
  --batch-size N                 batch size (default 1024; cnn: ${CNN_RECIPE.batchSize})
  --lr X                         learning rate (default 0.001; cnn: ${CNN_RECIPE.lr}, the peak of its
                                 one-cycle schedule)
  --optimizer adam|adamw|sgd|rmsprop   (default adam; cnn: sgd, Nesterov momentum ${CNN_RECIPE.momentum}
                                 and weight decay ${CNN_RECIPE.weightDecay} on its weights)
  --seed N                       manualSeed before each model, 0 to 2^32-1 (default 0)
  --val-freq N                   validate every N epochs (default 1)
  --data DIR                     folder with cifar-10-batches-bin/ (default data)
  --out DIR                      output folder (default out)
  --augment                      random flips and crops of training images (cnn: always)
  --resume                       continue each variant from OUT/<variant>/resume.safetensors
                                 (variants without one start afresh); the settings must be
                                 the run's (OUT/<variant>/run.json), --epochs may grow
  --overwrite                    start afresh over variants whose folders hold a run (without
                                 --resume or --overwrite such a folder is refused)
  --fail-fast                    stop every variant when one fails (default: a failed variant
                                 is recorded in the summary and the others train on)
  --checkpoint-seconds S         commit the checkpoint and history at most every S seconds; 0
                                 commits after every epoch (default: 0 on software adapters, 10 on
                                 hardware ones, where epochs take milliseconds). Ctrl-C and the
                                 end of a run always write the last epoch
  --vector-width auto|256|512    Mesa's software adapters only: 512 compiles the kernels for
                                 AVX-512, 1.1-1.2x faster for the MLPs where the CPU has it.
                                 auto (the default) takes 512 for MLP runs of 40 epochs or
                                 more on an AVX-512 CPU, else 256, and prints the choice; Deno
                                 reads the CPU's flags only with --allow-all, so under this
                                 task's permissions auto stays at 256 (pass 512 to opt in). The
                                 512-bit shader cache is OUT/.mesa-shader-cache-512: the first
                                 run there compiles for about 25 s, later ones ~7 s
  --sequential                   train the variants one after another (the default on software
                                 adapters; hardware adapters train them side by side, with the
                                 same results, so a fast GPU never idles on a readback)
  -h, --help                     this text

Ctrl-C stops within the current chunk of steps: the epoch in progress is dropped and the last
committed epoch stays (resume with --resume); with --checkpoint-seconds, an epoch whose commit
was deferred is finished and committed first. A second Ctrl-C exits at once, but never in the
middle of writing a checkpoint. A folder is locked (OUT/<variant>/run.lock) while a run writes it.`;

/**
 * `--epochs -3` → `--epochs=-3`: parseArgs takes a dash-led word for an option, so without this
 * the error would say "ambiguous" instead of naming the value.
 */
function joinDashValues(args: string[], flags: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const next = args[i + 1];
    if (flags.includes(args[i]) && next !== undefined && /^-[\d.]/.test(next)) {
      out.push(`${args[i]}=${next}`);
      i++;
    } else out.push(args[i]);
  }
  return out;
}

const NUMBER_FLAGS = [
  "--epochs",
  "--batch-size",
  "--lr",
  "--seed",
  "--val-freq",
  "--checkpoint-seconds",
];

await runMain("train", async () => {
  const v = parseFlags({
    args: joinDashValues(scriptArgs(), NUMBER_FLAGS),
    options: {
      model: { type: "string", default: "all" },
      epochs: { type: "string" },
      "batch-size": { type: "string" },
      lr: { type: "string" },
      optimizer: { type: "string" },
      seed: { type: "string", default: "0" },
      "val-freq": { type: "string", default: "1" },
      "checkpoint-seconds": { type: "string" },
      data: { type: "string", default: "data" },
      out: { type: "string", default: "out" },
      augment: { type: "boolean", default: false },
      resume: { type: "boolean", default: false },
      overwrite: { type: "boolean", default: false },
      "fail-fast": { type: "boolean", default: false },
      sequential: { type: "boolean", default: false },
      "vector-width": { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const model = oneOf("model", v.model, [...VARIANTS, "cnn", "all"] as const);
  const variants: ModelName[] = model === "all" ? [...VARIANTS] : [model];
  // The lecture's settings, or the cnn recipe's; a flag given overrides either.
  const defaults = model === "cnn"
    ? { ...CNN_RECIPE, optimizer: "sgd" }
    : { epochs: 200, batchSize: 1024, lr: 0.001, optimizer: "adam" };
  const seed = nonNegativeInt("seed", v.seed, { max: 0xffffffff });
  if (v.resume && v.overwrite) {
    throw new UsageError("--resume and --overwrite exclude each other: choose one");
  }
  const widthFlag = oneOf(
    "vector-width",
    v["vector-width"] ?? "auto",
    ["auto", "256", "512"] as const,
  );
  const options = {
    variants,
    epochs: positiveInt("epochs", v.epochs ?? String(defaults.epochs)),
    batchSize: positiveInt("batch-size", v["batch-size"] ?? String(defaults.batchSize)),
    lr: positiveNumber("lr", v.lr ?? String(defaults.lr)),
    optimizer: oneOf("optimizer", v.optimizer ?? defaults.optimizer, OPTIMIZERS),
    seed,
    validationFreq: positiveInt("val-freq", v["val-freq"]),
    dataDir: v.data,
    outDir: v.out,
    augment: v.augment,
    resume: v.resume,
    overwrite: v.overwrite,
    failFast: v["fail-fast"],
    concurrent: v.sequential ? false : undefined,
    checkpointSeconds: v["checkpoint-seconds"] === undefined
      ? undefined // the adapter's default, chosen by runExperiment
      : nonNegativeNumber("checkpoint-seconds", v["checkpoint-seconds"]),
  };
  try {
    const dir = await findBatchesDir(options.dataDir);
    for (const name of DATASET_FILES) {
      if (!(await Deno.stat(join(dir, name))).isFile) throw new Error(`"${name}" is not a file`);
    }
  } catch (e) {
    if (isPermissionError(e)) throw new UsageError(`--data: ${(e as Error).message}`);
    throw new UsageError(
      `--data ${JSON.stringify(options.dataDir)} holds no CIFAR-10: ${
        (e as Error).message.replace(/; run `deno task download`$/, "")
      }; run: deno task download`,
    );
  }
  await checkWritableDir("out", options.outDir);
  // Everything that can be known before training: every variant's folder, lock and resume.
  let plan: ExperimentPlan;
  try {
    plan = await planExperiment(options);
  } catch (e) {
    const flag = options.resume ? "--resume: " : "";
    const hint = e instanceof Error && e.name === "RunExistsError"
      ? ` (continue it with --resume, or replace it with --overwrite)`
      : "";
    throw new UsageError(`${flag}${(e as Error).message}${hint}`);
  }
  if (options.resume && plan.runs.every((r) => !r.resume)) {
    const paths = variants.map((name) => join(options.outDir, name, "resume.safetensors"));
    throw new UsageError(
      `--resume: --out ${JSON.stringify(options.outDir)} holds no checkpoint (${
        paths.join(", ")
      }: none exists)`,
    );
  }

  const controller = new AbortController();
  const onSignal = async () => {
    if (!controller.signal.aborted) {
      console.error("\ntrain: stopping within the current chunk of steps (Ctrl-C again to force)");
      controller.abort();
      return;
    }
    console.error("\ntrain: forced exit (after the checkpoint being written, if any)");
    await checkpointsIdle();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  // auto: 512 bits where the CPU has AVX-512 and the run is long enough (lavapipe.ts).
  const choice = widthFlag === "auto"
    ? chooseVectorWidth(readCpuFlags(), {
      epochs: options.epochs,
      convolutional: variants.includes("cnn"),
    })
    : { width: Number(widthFlag) as 256 | 512, reason: "--vector-width" };
  if (choice.width === 512) {
    // Before the adapter is requested; the shader cache goes where this task may write (256 is
    // the driver's default and keeps Mesa's own cache).
    useLavapipeVectorWidth(512, join(options.outDir, ".mesa-shader-cache-512"));
  }
  const gpu = await requestGpu();
  const adapterWidth = adapterVectorWidth(gpu.adapter.description);
  if (widthFlag !== "auto" && adapterWidth !== choice.width) {
    console.error(
      `train: --vector-width ${widthFlag} has no effect on this adapter (${gpu.adapter.description})`,
    );
  } else if (adapterWidth !== null) {
    console.error(`train: vector width ${adapterWidth} bits (${choice.reason})`);
  }
  await matmulVariant(gpu);
  const hint = slowAdapterHint(gpu);
  if (hint) console.error(`train: ${hint}`);
  console.error(
    `train: ${variants.join(", ")} for ${options.epochs} epochs on ${gpu.adapter.description}${
      sideBySide(gpu, options) ? ", side by side" : ""
    }`,
  );
  const rows = await runExperiment(gpu, { ...options, signal: controller.signal }, plan);
  Deno.removeSignalListener("SIGINT", onSignal);
  console.log(formatSummary(rows));
  const failed = rows.filter((r) => r.status === "failed");
  if (failed.length > 0) {
    console.error(
      `train: ${plural(failed.length, "variant")} of ${rows.length} failed: ${
        failed.map((r) => `${r.variant} (${r.error})`).join("; ")
      }`,
    );
    return 1;
  }
  if (controller.signal.aborted) {
    console.error(
      rows.some((r) => r.epochs > 0)
        ? `train: interrupted; resume with: deno task train --resume --out ${options.outDir} (same options)`
        : `train: interrupted before the first epoch was saved; nothing to resume (run it again)`,
    );
    return 130;
  }
  return 0;
});
