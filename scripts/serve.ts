/**
 * `deno task serve`: the training page on http://127.0.0.1:8000/. It serves web/ (the page),
 * dist/ (the bundles `deno task build` writes; the task builds them first) and the CIFAR-10
 * binary batches under /data/, from the first of data/ and ../shared/data that holds them.
 *
 * @module
 */

import {
  findBatchesDir,
  isPermissionError,
  META_FILE,
  TEST_FILE,
  TRAIN_FILES,
} from "../lib/data/cifar10.ts";
import { nonNegativeInt, parseScriptFlags, scriptArgs, UsageError } from "../lib/cli/args.ts";
import { siteHandler } from "../lib/io/site.ts";

const HELP = `Usage: deno task serve [--port 8000] [--data DIR]

Serves the training page (web/), its bundles (dist/, built by the task first) and the CIFAR-10
binary batches (as /data/<file>) on 127.0.0.1. Open http://127.0.0.1:8000/ in a browser with
WebGPU. Without a dataset the page still runs: pick the .bin files from disk there.

Options:
  --port N     the port (default 8000; 0 picks a free one)
  --data DIR   a folder holding cifar-10-batches-bin/, or that folder (default: data, else
               ../shared/data; another folder needs its own --allow-read)
  --dist DIR   the bundles' folder (default dist)
  -h, --help   show this help

Stops on Ctrl-C. Exit codes: 0 stopped, 2 bad input.`;

/** The first default folder holding the batches, or null; a refused read is thrown. */
async function defaultData(): Promise<string | null> {
  for (const dir of ["data", "../shared/data"]) {
    try {
      return await findBatchesDir(dir);
    } catch (error) {
      if (isPermissionError(error)) throw error;
    }
  }
  return null;
}

async function main(args: string[]): Promise<number> {
  const values = parseScriptFlags("serve", HELP, {
    args,
    options: {
      port: { type: "string", default: "8000" },
      data: { type: "string" },
      dist: { type: "string", default: "dist" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (typeof values === "number") return values;
  let port: number;
  try {
    port = nonNegativeInt("port", values.port, { max: 65535 });
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`serve: ${error.message}`);
    return 2;
  }
  let data: string | null;
  try {
    data = values.data === undefined ? await defaultData() : await findBatchesDir(values.data);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound) && !isPermissionError(error)) throw error;
    console.error(`serve: ${error.message}`);
    return 2;
  }
  for (const bundle of ["wgnn.js", "web.js"]) {
    try {
      await Deno.stat(`${values.dist}/${bundle}`);
    } catch {
      console.error(
        `serve: Cannot serve the page: ${values.dist}/${bundle} is missing (run \`deno task build\`)`,
      );
      return 2;
    }
  }
  const handler = siteHandler([
    { prefix: "/", dir: "web", index: "index.html" },
    { prefix: "/dist/", dir: values.dist },
    ...(data === null ? [] : [{
      prefix: "/data/",
      dir: data,
      only: [...TRAIN_FILES, TEST_FILE, META_FILE],
    }]),
  ]);
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen({ port }) {
      console.log(`serve: the training page is on http://127.0.0.1:${port}/`);
      console.log(
        data === null
          ? "serve: no CIFAR-10 in data/ or ../shared/data: pick the files in the page"
          : `serve: CIFAR-10 from ${data}`,
      );
    },
  }, handler);
  Deno.addSignalListener("SIGINT", () => server.shutdown());
  await server.finished;
  return 0;
}

if (import.meta.main) Deno.exit(await main(scriptArgs()));
