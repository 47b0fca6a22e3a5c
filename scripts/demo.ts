/**
 * `deno task demo`: the README's main command. Downloads CIFAR-10 if it is missing, trains the
 * lecture's three variants for a short run (20 epochs by default, so that it takes a few minutes
 * on a 2-core software adapter), plots the curves and writes out/report.html.
 */

import { requestGpu } from "../lib/gpu/device.ts";
import { downloadCifar10 } from "../lib/data/download.ts";
import {
  checkWritableDir,
  parseFlags,
  positiveInt,
  runMain,
  scriptArgs,
  UsageError,
} from "../lib/cli/args.ts";
import {
  type ExperimentOptions,
  type ExperimentPlan,
  planExperiment,
  runExperiment,
  VARIANTS,
} from "../lib/train/experiment.ts";
import { formatSummary } from "../lib/train/summary.ts";
import { readRunFolder, writePlots } from "../lib/plot/run.ts";
import { matmulVariant, slowAdapterHint } from "../lib/ops/matmul_trial.ts";

const HELP = `Usage: deno task demo [--epochs N] [--data DIR] [--from PATH] [--out DIR]

Downloads CIFAR-10 into DIR (default data) unless it is already there and verified, trains the
lecture's three MLPs (plain, bn, dropout) for N epochs each (default 20), and writes the loss
plots and out/report.html. The full 200-epoch run is: deno task train --model all

  --epochs N     epochs per variant (default 20)
  --data DIR     dataset folder (default data)
  --from PATH    a local cifar-10-binary.tar.gz or extracted folder to take the data from
  --out DIR      output folder (default out)
  --overwrite    replace the runs an earlier demo or train left in the output folder
  -h, --help     this text`;

await runMain("demo", async () => {
  const v = parseFlags({
    // `deno task demo -- --epochs 2` passes the "--" on; npm habits should still work.
    args: scriptArgs(),
    options: {
      epochs: { type: "string", default: "20" },
      data: { type: "string", default: "data" },
      from: { type: "string" },
      out: { type: "string", default: "out" },
      overwrite: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const epochs = positiveInt("epochs", v.epochs);
  await checkWritableDir("out", v.out);
  const started = performance.now();
  const data = await downloadCifar10(v.data, { from: v.from });
  console.error(`demo: CIFAR-10 ready in ${data.dir} (source: ${data.source})`);
  const controller = new AbortController();
  const options: ExperimentOptions = {
    variants: VARIANTS,
    epochs,
    batchSize: 1024,
    lr: 1e-3,
    optimizer: "adam",
    seed: 0,
    validationFreq: 1,
    dataDir: data.dir,
    outDir: v.out,
    overwrite: v.overwrite,
    signal: controller.signal,
  };
  let plan: ExperimentPlan;
  try {
    plan = await planExperiment(options);
  } catch (e) {
    const hint = e instanceof Error && e.name === "RunExistsError"
      ? ` (rerun with --overwrite to replace it, or choose another --out)`
      : "";
    throw new UsageError(`${(e as Error).message}${hint}`);
  }
  const gpu = await requestGpu();
  await matmulVariant(gpu);
  const hint = slowAdapterHint(gpu);
  if (hint) console.error(`demo: ${hint}`);
  console.error(
    `demo: training plain, bn and dropout for ${epochs} epochs each on ${gpu.adapter.description}` +
      ` (a short run; the lecture's 200 epochs: deno task train --model all)`,
  );
  const onSignal = () => controller.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  const rows = await runExperiment(gpu, options, plan);
  Deno.removeSignalListener("SIGINT", onSignal);
  console.log(formatSummary(rows));
  const written = await writePlots(await readRunFolder(v.out));
  const report = written.find((f) => f.endsWith("report.html")) ?? `${v.out}/report.html`;
  console.log(`\nwrote ${written.length} files; open ${report}`);
  console.log(`total ${((performance.now() - started) / 1000).toFixed(0)} s`);
  const failed = rows.filter((r) => r.status === "failed");
  if (failed.length > 0) {
    console.error(`demo: failed: ${failed.map((r) => `${r.variant} (${r.error})`).join("; ")}`);
    return 1;
  }
  return controller.signal.aborted ? 130 : 0;
});
