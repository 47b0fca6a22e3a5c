/**
 * Terminal output shared by the layers: the download progress (lib/data) and the training
 * progress (lib/train) both write through here.
 *
 * @module
 */

/** Writes `text` to stderr, ignoring a closed pipe. */
export function writeStderr(text: string): void {
  const bytes = new TextEncoder().encode(text);
  try {
    let written = 0;
    while (written < bytes.length) written += Deno.stderr.writeSync(bytes.subarray(written));
  } catch {
    // A closed stderr must not fail a download or a training run.
  }
}
