/**
 * `deno task plot`: draws the loss curves, accuracy, confusion matrices and `report.html` from
 * what `deno task train` wrote. Exit codes: 0 done, 2 bad input (nothing overwritten).
 *
 * @module
 */

import { PlotInputError } from "../lib/plot/load.ts";
import { readRunFolder, writePlots } from "../lib/plot/run.ts";
import { parseScriptFlags, plural, scriptArgs } from "../lib/cli/args.ts";

const HELP = `Usage: deno task plot [--out out/]

Reads <out>/<variant>/history.json and <out>/summary.json (computed from the histories when
absent) and writes, atomically:
  <out>/<variant>/loss.svg        train and validation loss per epoch (y from 0.2 to 2)
  <out>/<variant>/confusion.svg   validation confusion matrix (when the history has one)
  <out>/compare_val_loss.svg      validation loss of every variant
  <out>/compare_train_loss.svg    training loss of every variant (log scale)
  <out>/val_accuracy.svg          validation accuracy of every variant
  <out>/report.html               one self-contained page with all of the above and the summary

Options:
  --out DIR   the training output folder (default: out/)
  -h, --help  show this help

Exit codes: 0 done, 2 bad input (a one-line error names the file; nothing is overwritten).`;

async function main(args: string[]): Promise<number> {
  const values = parseScriptFlags("plot", HELP, {
    args,
    options: { out: { type: "string", default: "out/" }, help: { type: "boolean", short: "h" } },
    strict: true,
    allowPositionals: false,
  });
  if (typeof values === "number") return values;
  const outDir = values.out.replace(/\/+$/, "") || "/";
  try {
    const run = await readRunFolder(outDir);
    const written = await writePlots(run);
    const source = run.summaryFromFile ? "summary.json" : "summary computed from the histories";
    console.log(
      `plot: ${plural(run.runs.length, "variant")} (${source}); wrote ${
        plural(written.length, "file")
      }:`,
    );
    for (const path of written) console.log(`  ${path}`);
    return 0;
  } catch (error) {
    if (error instanceof PlotInputError) {
      console.error(`plot: ${error.message}`);
      return 2;
    }
    throw error;
  }
}

if (import.meta.main) Deno.exit(await main(scriptArgs()));
