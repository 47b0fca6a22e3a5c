/**
 * Proof that the report renders: open it in headless Chromium (Debian's `chromium` package),
 * save a screenshot, decode the PNG and check it is not blank. The `screenshot` task's helpers
 * (scripts/screenshot_report.ts is the entry point); not in lib/, which never starts a browser.
 *
 * @module
 */

// deno-lint-ignore no-import-prefix -- pinned script-only decoder, runs without our import map
import { decode } from "npm:fast-png@8.0.0";
import { basename, dirname, join } from "node:path";
import { pathToFileURL } from "node:url";

/** Where Debian's `chromium` package puts the browser. */
export const DEFAULT_CHROMIUM = "/usr/bin/chromium";

/** Options for {@link screenshotHtml}. */
export interface ScreenshotOptions {
  /** The browser binary; {@link DEFAULT_CHROMIUM} by default. */
  chromium?: string;
  /** Window width in CSS pixels (default 1280). */
  width?: number;
  /** Window height in CSS pixels (default 2000); the screenshot shows this much of the page. */
  height?: number;
  /** Kill the browser after this many milliseconds (default 120 000). */
  timeoutMs?: number;
}

/**
 * Screenshots the local HTML file `htmlPath` into `pngPath` with headless Chromium, using a new
 * empty profile folder beside the PNG (removed afterwards) and no network features. Throws with
 * Chromium's last output lines when it fails; `Deno.errors.NotFound` when it is not installed.
 *
 * @example Screenshot the report
 * ```ts ignore
 * await screenshotHtml("out/report.html", "out/report.png");
 * ```
 */
export async function screenshotHtml(
  htmlPath: string,
  pngPath: string,
  options: ScreenshotOptions = {},
): Promise<void> {
  const { chromium = DEFAULT_CHROMIUM, width = 1280, height = 2000, timeoutMs = 120_000 } = options;
  const page = pathToFileURL(await Deno.realPath(htmlPath)).href;
  const png = join(await Deno.realPath(dirname(pngPath)), basename(pngPath));
  // The profile lives beside the PNG so the script needs no write access outside that folder.
  const profile = await Deno.makeTempDir({ dir: dirname(png), prefix: ".chromium-profile-" });
  try {
    await Deno.remove(png).catch(() => {});
    const args = [
      "--headless",
      "--no-sandbox", // as root in a container the sandbox cannot start
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
      `--screenshot=${png}`,
      `--window-size=${width},${height}`,
      page,
    ];
    const output = await new Deno.Command(chromium, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(timeoutMs),
    }).output();
    const exists = await Deno.stat(png).then(() => true, () => false);
    if (!output.success || !exists) {
      const log = new TextDecoder().decode(output.stderr).trim().split("\n").slice(-3).join(" | ");
      throw new Error(
        `Cannot screenshot "${htmlPath}": ${chromium} exited with code ${output.code}` +
          `${exists ? "" : " and wrote no PNG"}: ${log}`,
      );
    }
  } finally {
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
}

/** What {@link inspectPng} measured. */
export interface PngStats {
  /** Image width in pixels. */
  width: number;
  /** Image height in pixels. */
  height: number;
  /** Share of pixels with any RGB channel below 245 (i.e. visibly not white). */
  nonWhiteFraction: number;
  /** Number of distinct RGB colours. */
  distinctColors: number;
  /** For each requested colour, how many pixels lie within the tolerance of it. */
  colorPixels: Record<string, number>;
}

function parseHex(hex: string): [number, number, number] {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (m === null) {
    throw new TypeError(`Cannot parse colour: expected #rrggbb: current value is "${hex}"`);
  }
  return [parseInt(m[1], 16), parseInt(m[2], 16), parseInt(m[3], 16)];
}

/**
 * Decodes an 8-bit RGB or RGBA PNG and measures it; `colors` (#rrggbb) are counted within
 * `tolerance` per channel (antialiasing blends line edges, so centres match, edges do not).
 */
export function inspectPng(bytes: Uint8Array, colors: string[] = [], tolerance = 24): PngStats {
  const image = decode(bytes);
  const { width, height, channels, depth } = image;
  if (depth !== 8 || (channels !== 3 && channels !== 4) || image.palette !== undefined) {
    throw new RangeError(
      `Cannot inspect PNG: expected 8-bit RGB or RGBA: current value is ${depth}-bit, ` +
        `${channels} channels${image.palette ? ", palette" : ""}`,
    );
  }
  const data = image.data;
  const targets = colors.map(parseHex);
  const counts = new Array<number>(colors.length).fill(0);
  const distinct = new Set<number>();
  let nonWhite = 0;
  for (let i = 0; i < width * height; i++) {
    const r = data[i * channels], g = data[i * channels + 1], b = data[i * channels + 2];
    distinct.add((r << 16) | (g << 8) | b);
    if (r < 245 || g < 245 || b < 245) nonWhite++;
    targets.forEach(([tr, tg, tb], k) => {
      if (
        Math.abs(r - tr) <= tolerance && Math.abs(g - tg) <= tolerance &&
        Math.abs(b - tb) <= tolerance
      ) {
        counts[k]++;
      }
    });
  }
  return {
    width,
    height,
    nonWhiteFraction: nonWhite / (width * height),
    distinctColors: distinct.size,
    colorPixels: Object.fromEntries(colors.map((c, k) => [c, counts[k]])),
  };
}

/**
 * Why a screenshot looks blank, or `undefined` when it passes: at least `minNonWhite` of the
 * pixels not white (default 2 %) and at least `minColors` distinct colours (default 16).
 */
export function blankReason(
  stats: PngStats,
  minNonWhite = 0.02,
  minColors = 16,
): string | undefined {
  if (stats.nonWhiteFraction < minNonWhite) {
    return `only ${(100 * stats.nonWhiteFraction).toFixed(2)}% of pixels are not white ` +
      `(expected >= ${100 * minNonWhite}%)`;
  }
  if (stats.distinctColors < minColors) {
    return `only ${stats.distinctColors} distinct colours (expected >= ${minColors})`;
  }
  return undefined;
}
