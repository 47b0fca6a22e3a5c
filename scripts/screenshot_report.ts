/**
 * `deno task screenshot`: opens `out/report.html` in headless Chromium, saves `out/report.png`
 * and checks that it is not blank. Exit codes: 0 looks fine, 1 blank or Chromium failed,
 * 2 bad input, 3 Chromium not installed (Debian: `apt-get install -y chromium`).
 *
 * @module
 */

import { variantColor } from "../lib/plot/figures.ts";
import { blankReason, DEFAULT_CHROMIUM, inspectPng, screenshotHtml } from "./screenshot.ts";
import { parseScriptFlags, scriptArgs } from "../lib/cli/args.ts";

const HELP = `Usage: deno task screenshot [--report out/report.html] [--png out/report.png]

Opens the report in headless Chromium (window 1280×2000), writes a PNG screenshot and checks it
is not blank (>= 2% non-white pixels, >= 16 distinct colours). Prints one JSON line with the
measurements, including pixel counts of the plain/bn/dropout line colours.

Options:
  --report FILE     the HTML page (default: out/report.html)
  --png FILE        the screenshot to write (default: out/report.png)
  --chromium PATH   the browser (default: ${DEFAULT_CHROMIUM}; Debian package "chromium")
  -h, --help        show this help

Exit codes: 0 fine, 1 blank or Chromium failed, 2 bad input, 3 Chromium not installed.`;

async function main(args: string[]): Promise<number> {
  const values = parseScriptFlags("screenshot", HELP, {
    args,
    options: {
      report: { type: "string", default: "out/report.html" },
      png: { type: "string", default: "out/report.png" },
      chromium: { type: "string", default: DEFAULT_CHROMIUM },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (typeof values === "number") return values;
  if (!(await Deno.stat(values.report).then((s) => s.isFile, () => false))) {
    console.error(`screenshot: --report "${values.report}" is not a readable file`);
    return 2;
  }
  try {
    await screenshotHtml(values.report, values.png, { chromium: values.chromium });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      console.error(
        `screenshot: --chromium "${values.chromium}" not found (apt-get install -y chromium)`,
      );
      return 3;
    }
    console.error(`screenshot: ${(error as Error).message}`);
    return 1;
  }
  const colors = ["plain", "bn", "dropout"].map((v) => variantColor(v, []));
  const stats = inspectPng(await Deno.readFile(values.png), colors);
  const reason = blankReason(stats);
  console.log(JSON.stringify({ png: values.png, ...stats, blank: reason ?? false }));
  if (reason !== undefined) {
    console.error(`screenshot: "${values.png}" looks blank: ${reason}`);
    return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(scriptArgs()));
