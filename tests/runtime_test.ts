import assert from "node:assert/strict";
import { ParamsLayout } from "../lib/gpu/params.ts";
import { grid1d } from "../lib/gpu/kernels.ts";
import { StepEncoder } from "../lib/gpu/encoder.ts";
import { Tensor } from "../lib/tensor.ts";
import { gpuTest } from "./helpers.ts";

Deno.test("ParamsLayout packs scalars in order and pads to 16 bytes", () => {
  const layout = new ParamsLayout("t.Params", { a: "u32", b: "f32", c: "i32", d: "u32", e: "f32" });
  assert.equal(layout.byteSize, 32);
  const view = new DataView(layout.pack({ a: 7, b: 0.5, c: -3, d: 4294967295, e: 2 }));
  assert.equal(view.getUint32(0, true), 7);
  assert.equal(view.getFloat32(4, true), 0.5);
  assert.equal(view.getInt32(8, true), -3);
  assert.equal(view.getUint32(12, true), 4294967295);
  assert.equal(view.getFloat32(16, true), 2);
  assert.equal(new ParamsLayout("one", { x: "u32" }).byteSize, 16);
});

Deno.test("ParamsLayout rejects values that do not fit, naming the field", () => {
  const layout = new ParamsLayout("t.Params", { n: "u32", slope: "f32" });
  assert.throws(
    () => layout.pack({ n: -1, slope: 0 }),
    /t.Params.n: value must be a u32: current value is -1/,
  );
  assert.throws(() => layout.pack({ n: 1.5, slope: 0 }), /current value is 1.5/);
  assert.throws(
    () => layout.pack({ n: 1, slope: Infinity }),
    /t.Params.slope: value must be a finite number: current value is Infinity/,
  );
});

Deno.test("grid1d splits more than 65,535 workgroups into two dimensions", () => {
  assert.deepEqual(grid1d(10), [10, 1, 1]);
  assert.deepEqual(grid1d(65535), [65535, 1, 1]);
  for (const n of [65536, 200000, 4_000_000]) {
    const [x, y] = grid1d(n);
    assert.ok(
      x <= 65535 && y <= 65535 && x * y >= n && x * (y - 1) < n,
      `grid for ${n}: ${x}x${y}`,
    );
  }
  assert.throws(() => grid1d(-1), /current value is -1/);
});

gpuTest("tensors: upload, read back, views and shape errors", async (gpu) => {
  const t = Tensor.from(gpu, new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3], "t");
  assert.deepEqual([...await t.toFloat32()], [1, 2, 3, 4, 5, 6]);
  assert.deepEqual([...await t.reshape([3, 2]).toFloat32()], [1, 2, 3, 4, 5, 6]);
  assert.throws(() => t.reshape([4, 2]), /Cannot reshape "t" from \[2, 3\] to \[4, 2\]/);
  assert.throws(
    () => Tensor.empty(gpu, [3, 0]),
    /dimensions must be positive integers: current shape is \[3, 0\]/,
  );
  assert.throws(
    () => Tensor.from(gpu, [1, 2, 3], [2, 2], "x"),
    /3 values do not fill shape \[2, 2\]/,
  );
  const bytes = Tensor.from(gpu, new Uint8Array([1, 2, 3, 250, 9]), [5]);
  assert.equal(bytes.dtype, "u8");
  assert.deepEqual([...await bytes.read()], [1, 2, 3, 250, 9]);
  const align = gpu.limits.minStorageBufferOffsetAlignment;
  const arena = Tensor.from(gpu, Float32Array.from({ length: 2 * align / 4 }, (_, i) => i), [
    2 * align / 4,
  ]);
  const view = Tensor.view(arena, align, [2], "view");
  assert.deepEqual([...await view.toFloat32()], [align / 4, align / 4 + 1]);
  assert.throws(() => Tensor.view(arena, 4, [2], "bad"), /offset 4 is not a multiple/);
  for (const x of [t, bytes, arena]) x.dispose();
});

gpuTest("memory counters track allocation and disposal; use after dispose throws", async (gpu) => {
  const before = { ...gpu.memory };
  const t = Tensor.empty(gpu, [1000], "f32", "counted");
  assert.equal(gpu.memory.liveBytes, before.liveBytes + 4000);
  assert.ok(gpu.memory.peakBytes >= before.liveBytes + 4000);
  t.dispose();
  t.dispose(); // idempotent
  assert.equal(gpu.memory.liveBytes, before.liveBytes);
  assert.throws(() => t.buffer, /Cannot use buffer "counted": it was disposed/);
  assert.throws(
    () => gpu.createBuffer(gpu.limits.maxBufferSize + 4, GPUBufferUsage.STORAGE, "huge"),
    /exceed the adapter's maxBufferSize/,
  );
  await Promise.resolve();
});

gpuTest("readbacks reuse pooled staging buffers", async (gpu) => {
  const t = Tensor.from(gpu, new Float32Array(64).fill(3), [64]);
  await t.read();
  const live = gpu.memory.liveObjects;
  for (let i = 0; i < 5; i++) await t.read();
  assert.equal(gpu.memory.liveObjects, live, "no new staging buffers for same-size reads");
  t.dispose();
});

gpuTest("a kernel that fails to compile is reported with its name", async (gpu) => {
  const broken = {
    name: "broken_kernel",
    source: "@compute @workgroup_size(8) fn main() { let x: u32 = oops; }",
  };
  let message = "";
  try {
    const pipeline = gpu.pipelines.get(broken, "main");
    const enc = new StepEncoder(gpu);
    enc.dispatch(
      "broken_kernel",
      pipeline,
      gpu.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [] }),
      [1, 1, 1],
    );
    enc.submit();
    await gpu.sync();
  } catch (e) {
    message = (e as Error).message;
  }
  assert.match(message, /broken_kernel/);
  // The error was consumed: the device keeps working.
  const t = Tensor.from(gpu, [1, 2], [2]);
  assert.deepEqual([...await t.toFloat32()], [1, 2]);
  t.dispose();
});
