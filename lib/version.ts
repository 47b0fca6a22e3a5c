/**
 * The toolkit's version, recorded in every run manifest. It equals `version` in `deno.json`
 * (`tests/run_dir_test.ts` keeps the two in step); a constant rather than a JSON import, so the
 * library stays importable by URL without the config file.
 *
 * @module
 */

/** The toolkit's version (semver, as in `deno.json`). */
export const VERSION = "0.1.0";
