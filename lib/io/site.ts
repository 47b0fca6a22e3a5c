/**
 * A static site over a few folders, for `deno task serve`: each URL prefix maps to one folder,
 * and a request is answered only with a regular file inside that folder. Path traversal is
 * refused before the file system is touched: every segment of the path is decoded and checked
 * (`..`, `.`, an empty segment, a decoded `/` or `\`, a NUL or a leading dot are all refused),
 * and the joined path must still lie under the folder.
 *
 * @module
 */

import { join, relative, resolve } from "node:path";

/** One folder of the site. */
export interface Mount {
  /** The URL prefix, starting and ending with "/" ("/dist/"); "/" is the site's root. */
  prefix: string;
  /** The folder its files come from. */
  dir: string;
  /** The only file names served from it. Default: any file directly in or below `dir`. */
  only?: readonly string[];
  /** The file answering the prefix itself ("/" → "index.html"). Default: none (404). */
  index?: string;
}

/** Content types by file extension; anything else is sent as bytes. */
const TYPES: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".txt": "text/plain; charset=utf-8",
  ".wasm": "application/wasm",
  ".bin": "application/octet-stream",
  ".safetensors": "application/octet-stream",
};

/** The content type of a file name, from its extension ("application/octet-stream" if unknown). */
export function contentType(name: string): string {
  const dot = name.lastIndexOf(".");
  return (dot >= 0 ? TYPES[name.slice(dot).toLowerCase()] : undefined) ??
    "application/octet-stream";
}

/**
 * The path below a mount that `pathname` names, as decoded segments, or null when a segment
 * is unsafe. `pathname` is the raw URL path after the prefix ("app.js", "a%20b/c.txt").
 */
export function safeSegments(pathname: string): string[] | null {
  const segments: string[] = [];
  for (const raw of pathname.split("/")) {
    let segment: string;
    try {
      segment = decodeURIComponent(raw);
    } catch {
      return null; // malformed percent-encoding
    }
    if (segment === "" || segment.startsWith(".")) return null; // "..", ".", ".git", "//"
    if (/[/\\\0]/.test(segment)) return null; // an encoded separator or NUL
    segments.push(segment);
  }
  return segments;
}

function text(status: number, body: string): Response {
  return new Response(body, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" },
  });
}

/** The file `pathname` names under `mounts` (longest prefix first), or an error response. */
function locate(mounts: readonly Mount[], pathname: string): string | Response {
  const mount = [...mounts].sort((a, b) => b.prefix.length - a.prefix.length)
    .find((m) => pathname.startsWith(m.prefix) || pathname === m.prefix.slice(0, -1));
  if (!mount) return text(404, `Cannot serve ${pathname}: no such folder on this site`);
  const rest = pathname.slice(mount.prefix.length);
  if (rest === "") {
    if (mount.index === undefined) return text(404, `Cannot serve ${pathname}: not a file`);
    return join(mount.dir, mount.index);
  }
  const segments = safeSegments(rest);
  if (segments === null) {
    return text(400, `Cannot serve ${pathname}: the path leaves its folder or is not plain`);
  }
  if (mount.only && !(segments.length === 1 && mount.only.includes(segments[0]))) {
    return text(404, `Cannot serve ${pathname}: not one of the files served from ${mount.prefix}`);
  }
  const path = join(mount.dir, ...segments);
  const below = relative(resolve(mount.dir), resolve(path));
  if (below === "" || below.startsWith("..")) {
    return text(400, `Cannot serve ${pathname}: the path leaves its folder`);
  }
  return path;
}

/**
 * A request handler serving `mounts`: GET and HEAD only, regular files only, with their content
 * type and length and `cache-control: no-store` (a rebuilt bundle is picked up on reload).
 *
 * @example The page, its bundles and the CIFAR-10 files
 * ```ts ignore
 * import { siteHandler } from "./site.ts";
 *
 * const handler = siteHandler([
 *   { prefix: "/", dir: "web", index: "index.html" },
 *   { prefix: "/dist/", dir: "dist" },
 *   { prefix: "/data/", dir: "data/cifar-10-batches-bin", only: ["test_batch.bin"] },
 * ]);
 * Deno.serve({ hostname: "127.0.0.1", port: 8000 }, handler);
 * ```
 */
export function siteHandler(mounts: readonly Mount[]): (request: Request) => Promise<Response> {
  for (const m of mounts) {
    if (!m.prefix.startsWith("/") || !m.prefix.endsWith("/")) {
      throw new RangeError(
        `Cannot serve a folder: its prefix must start and end with "/": current value is ${
          JSON.stringify(m.prefix)
        }`,
      );
    }
  }
  return async (request) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      return text(405, `Cannot ${request.method} here: the site answers GET and HEAD`);
    }
    const pathname = new URL(request.url).pathname;
    const found = locate(mounts, pathname);
    if (found instanceof Response) return found;
    // Stat the path, not an open file: Deno checks a file's stat against its real path, so a
    // folder reached through a symlink (an allowed ../shared that links elsewhere) fails there.
    let info: Deno.FileInfo;
    let file: Deno.FsFile;
    try {
      info = await Deno.stat(found);
      if (!info.isFile) return text(404, `Cannot serve ${pathname}: not a file`);
      file = await Deno.open(found, { read: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound || error instanceof Deno.errors.NotADirectory) {
        return text(404, `Cannot serve ${pathname}: no such file`);
      }
      if (error instanceof Deno.errors.NotCapable) {
        return text(403, `Cannot serve ${pathname}: the server may not read it`);
      }
      throw error;
    }
    const headers = {
      "content-type": contentType(found),
      "content-length": String(info.size),
      "cache-control": "no-store",
    };
    if (request.method === "HEAD") {
      file.close();
      return new Response(null, { headers });
    }
    return new Response(file.readable, { headers });
  };
}
