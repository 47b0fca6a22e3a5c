/// <reference lib="dom" />
/**
 * The library, as the page loads it: the browser build `dist/wgnn.js` (`deno task build`),
 * served beside the page, typed as the entry it is built from. The URL is computed so that the
 * page's own bundle (dist/web.js) does not inline a second copy of the library.
 *
 * web/ is type-checked on its own (`deno check web/`, in `deno task ok`): its DOM types would
 * clash with Deno's in one program with lib/ and tests/.
 *
 * @module
 */

import type * as Browser from "../browser.ts";

/** What browser.ts exports. */
export type Nn = typeof Browser;

/** The library, loaded once. */
export const nn: Nn = await import(new URL("/dist/wgnn.js", location.href).href);
