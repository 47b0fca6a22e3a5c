/**
 * `deno task bench`: the toolkit's benchmark on the current WebGPU adapter.
 *
 * Prints a table and, with `--out FILE`, writes JSON of the shape
 * `{"adapter", "fallback", "results": [{"name", "unit", "value"}]}`. `--adapters all` also runs
 * the benchmark in child processes on lavapipe's 512-bit mode and on the GL backend.
 */

import { parseArgs } from "node:util";
import { requestGpu } from "../lib/gpu/device.ts";
import { writeTextFileAtomic } from "../lib/io/atomic.ts";
import { benchMatmul } from "./matmul.ts";
import type { BenchReport, BenchResult } from "./util.ts";

const HELP = `Usage: deno task bench [--out FILE] [--quick] [--rounds N] [--adapters current|all]

Measures the matmul engine on the seed's shapes (GFLOP/s, median of rounds after warm-up)
against an in-process yardstick kernel.

  --out FILE        also write the results as JSON
  --quick           fewer shapes (a smoke run)
  --rounds N        timed rounds per figure (default 5)
  --adapters all    also run on lavapipe at 512 bits and on the GL backend (child processes)
  --help            this text`;

/** Child-process configurations for `--adapters all` on Mesa's software adapters. */
const OTHER_ADAPTERS: { label: string; env: Record<string, string> }[] = [
  { label: "vulkan, LP_NATIVE_VECTOR_WIDTH=512", env: { LP_NATIVE_VECTOR_WIDTH: "512", DENO_WEBGPU_BACKEND: "vulkan" } },
  { label: "gl", env: { DENO_WEBGPU_BACKEND: "gl" } },
];

function fail(message: string): never {
  console.error(`bench: ${message}`);
  Deno.exit(2);
}

async function main(): Promise<void> {
  let args;
  try {
    args = parseArgs({
      args: Deno.args,
      options: {
        out: { type: "string" },
        quick: { type: "boolean", default: false },
        rounds: { type: "string", default: "5" },
        adapters: { type: "string", default: "current" },
        help: { type: "boolean", default: false },
      },
      strict: true,
    }).values;
  } catch (e) {
    fail(`${(e as Error).message}\n${HELP}`);
  }
  if (args.help) {
    console.log(HELP);
    return;
  }
  const rounds = Number(args.rounds);
  if (!Number.isInteger(rounds) || rounds < 1) fail(`--rounds must be a positive integer: current value is ${args.rounds}`);
  if (args.adapters !== "current" && args.adapters !== "all") {
    fail(`--adapters must be "current" or "all": current value is ${args.adapters}`);
  }

  const gpu = await requestGpu();
  console.log(`adapter: ${gpu.adapter.description}${gpu.adapter.fallback ? " (software/fallback)" : ""}`);
  const results: BenchResult[] = await benchMatmul(gpu, { rounds, quick: args.quick });
  printTable(results);
  const report: BenchReport & { others?: { label: string; report: BenchReport }[] } = {
    adapter: gpu.adapter.description,
    fallback: gpu.adapter.fallback,
    results,
  };
  if (args.adapters === "all") {
    report.others = [];
    for (const other of OTHER_ADAPTERS) {
      console.log(`\n--- ${other.label} (child process) ---`);
      const child = await runChild(other.env, rounds, args.quick);
      if (child) report.others.push({ label: other.label, report: child });
    }
  }
  if (args.out) {
    await writeTextFileAtomic(args.out, JSON.stringify(report, null, 2) + "\n");
    console.log(`wrote ${args.out}`);
  }
}

function printTable(results: BenchResult[]): void {
  const yard = results.find((r) => r.name.endsWith("/yardstick"))?.value;
  console.log(`${"name".padEnd(36)} ${"value".padStart(10)}  unit      variant   vs yardstick`);
  for (const r of results) {
    const ratio = yard && r.unit === "GFLOP/s" && !r.name.endsWith("/yardstick") ? `${(r.value / yard).toFixed(1)}x` : "";
    console.log(
      `${r.name.padEnd(36)} ${r.value.toFixed(1).padStart(10)}  ${r.unit.padEnd(9)} ${String(r.variant ?? "").padEnd(9)} ${ratio}`,
    );
  }
}

async function runChild(env: Record<string, string>, rounds: number, quick: boolean): Promise<BenchReport | null> {
  const out = await Deno.makeTempFile({ suffix: ".json" });
  // Mesa's shader cache ignores the vector width: give each configuration its own folder.
  const cache = await Deno.makeTempDir({ prefix: "wgnn-mesa-cache-" });
  const args = ["run", "--allow-env", "--allow-read=.", `--allow-write=${out}`, "bench/bench.ts", "--out", out, "--rounds", String(rounds)];
  if (quick) args.push("--quick");
  const child = new Deno.Command(Deno.execPath(), {
    args,
    env: { ...env, MESA_SHADER_CACHE_DIR: cache },
    stdout: "inherit",
    stderr: "inherit",
  });
  const { code } = await child.output();
  try {
    if (code !== 0) {
      console.log(`(child exited with code ${code})`);
      return null;
    }
    return JSON.parse(await Deno.readTextFile(out)) as BenchReport;
  } finally {
    await Deno.remove(out).catch(() => {});
    await Deno.remove(cache, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) await main();
