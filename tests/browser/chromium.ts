/**
 * Headless Chromium with WebGPU on SwiftShader (through Dawn), driven by puppeteer-core, and a
 * 127.0.0.1 HTTP server for the page, the bundles and the binary inputs and outputs of a test.
 *
 * The browser is started here with `Deno.Command` (the test's `--allow-run`) and puppeteer-core
 * connects to its DevTools socket on 127.0.0.1: `puppeteer.launch` would also need read access to
 * `/usr/bin/chromium`, which the README's test command does not grant. Nothing is downloaded: the
 * browser is Debian's `chromium`.
 *
 * @module
 */

// deno-lint-ignore no-import-prefix -- pinned test-only driver, like the pinned libraries in lib/
import puppeteer, { type Browser, type Page } from "npm:puppeteer-core@25.16.0";

/** Debian's Chromium (package "chromium"). */
export const CHROMIUM = "/usr/bin/chromium";

/** Flags for WebGPU on SwiftShader in a headless browser without a display or a sandbox. */
const FLAGS = [
  "--headless=new",
  "--no-sandbox",
  "--enable-unsafe-webgpu",
  "--use-webgpu-adapter=swiftshader",
  "--remote-debugging-address=127.0.0.1",
  "--remote-debugging-port=0",
  "--no-first-run",
  "--no-default-browser-check",
];

/** Why the browser tests cannot run here, or null when Chromium is installed. */
export async function chromiumMissing(): Promise<string | null> {
  try {
    await new Deno.Command(CHROMIUM, { args: ["--version"], stdout: "null", stderr: "null" })
      .output();
    return null;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      return `${CHROMIUM} is not installed (Debian: apt-get install -y chromium)`;
    }
    throw error;
  }
}

/** Files and routes the server answers; POSTed bodies land in `outputs`. */
export interface Site {
  /** Path ("/page.js") → body and content type. */
  files: Map<string, { body: Uint8Array<ArrayBuffer> | string; type: string }>;
  /** Path ("/out/kernels") → the last body POSTed there. */
  outputs: Map<string, Uint8Array>;
}

/** A running browser with one page, and the server it loads from. */
export class Session {
  readonly #child: Deno.ChildProcess;
  readonly #server: Deno.HttpServer<Deno.NetAddr> | null;
  readonly #profile: string;
  readonly browser: Browser;
  readonly page: Page;
  /** Browser console lines, for the error message of a failing test. */
  readonly console: string[];

  private constructor(
    child: Deno.ChildProcess,
    server: Deno.HttpServer<Deno.NetAddr> | null,
    profile: string,
    browser: Browser,
    page: Page,
    console: string[],
  ) {
    this.#child = child;
    this.#server = server;
    this.#profile = profile;
    this.browser = browser;
    this.page = page;
    this.console = console;
  }

  /** Starts the server for `site`, the browser, and opens `path` of the site in one page. */
  static open(site: Site, path = "/"): Promise<Session> {
    const server = serve(site);
    return Session.#launch(`http://127.0.0.1:${server.addr.port}${path}`, server);
  }

  /** Starts the browser and opens `url` (a server of the caller's) in one page. */
  static openUrl(url: string): Promise<Session> {
    return Session.#launch(url, null);
  }

  static async #launch(
    url: string,
    server: Deno.HttpServer<Deno.NetAddr> | null,
  ): Promise<Session> {
    const profile = await Deno.makeTempDir({ dir: "/tmp", prefix: "wgnn-chromium-" });
    const child = new Deno.Command(CHROMIUM, {
      args: [...FLAGS, `--user-data-dir=${profile}`, "about:blank"],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const endpoint = await devtoolsEndpoint(child.stderr);
    const browser = await puppeteer.connect({ browserWSEndpoint: endpoint, protocolTimeout: 0 });
    const page = await browser.newPage();
    const lines: string[] = [];
    page.on("console", (m) => lines.push(`${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => lines.push(`pageerror: ${String(e)}`));
    await page.goto(url);
    return new Session(child, server, profile, browser, page, lines);
  }

  /** Closes the browser, waits for it to exit, stops the server (if its own) and removes the profile. */
  async close(): Promise<void> {
    await this.browser.close().catch(() => {});
    await this.#child.status;
    await this.#server?.shutdown();
    await Deno.remove(this.#profile, { recursive: true }).catch(() => {});
  }
}

/** Reads Chromium's stderr until it names its DevTools socket; drains the rest in the background. */
async function devtoolsEndpoint(stderr: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Chromium exited before opening DevTools:\n${text.slice(-2000)}`);
    text += value;
    const m = /DevTools listening on (ws:\/\/\S+)/.exec(text);
    if (m) {
      (async () => {
        while (!(await reader.read()).done) { /* Chromium's log, not needed */ }
      })();
      return m[1];
    }
  }
}

function serve(site: Site): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (request) => {
    const path = new URL(request.url).pathname;
    if (request.method === "POST") {
      site.outputs.set(path, new Uint8Array(await request.arrayBuffer()));
      return new Response("stored");
    }
    const file = site.files.get(path);
    if (!file) return new Response(`no ${path}`, { status: 404 });
    return new Response(file.body, { headers: { "content-type": file.type } });
  });
}

/** Bundles `entry` for the browser with `deno bundle` (kernels inlined); returns the JS text. */
export async function bundle(entry: string): Promise<string> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "wgnn-bundle-" });
  try {
    const out = `${dir}/bundle.js`;
    const result = await new Deno.Command(Deno.execPath(), {
      args: ["bundle", "--quiet", "--platform", "browser", "--output", out, entry],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    if (result.code !== 0) {
      throw new Error(`deno bundle ${entry} failed:\n${new TextDecoder().decode(result.stderr)}`);
    }
    return await Deno.readTextFile(out);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
