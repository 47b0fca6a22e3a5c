/**
 * A model as a tree of modules: every module depth-first with its state-dict path, and the
 * state dict read and written through that tree.
 *
 * A module's state-dict names are its path from the model joined by "." and then its own names,
 * as PyTorch's `state_dict()` writes them: "1.weight" for a child of the model, "2.0.weight"
 * inside a nested Sequential, "3.fc.weight" for a child registered as "fc", "1.fn.0.weight"
 * inside a Residual. The order is PyTorch's too: a module's parameters, then its buffers, then
 * its children's entries in the order they were registered.
 *
 * @module
 */

import { describeData } from "../tensor.ts";
import type { HostTensor, Module } from "./module.ts";
import {
  fromStateLayout,
  type Parameter,
  type ParameterSpec,
  stateShape,
  toStateLayout,
} from "./parameter.ts";

/** One module of a model and its place there. */
export interface TreeNode {
  /** The module. */
  readonly module: Module;
  /** Its state-dict prefix ("" for the tree's root). */
  readonly path: string;
  /** Position among its parent's children; -1 for the root. */
  readonly index: number;
  /** Position depth-first below the root, a parent before its children; -1 for the root. */
  readonly position: number;
  /** Its parent's node; null for the root. */
  readonly parent: TreeNode | null;
}

/** A node of a model on the GPU: its own parameters' specs and their views in the arena. */
export interface ModelNode extends TreeNode {
  /** The module's own parameter specs, as declared. */
  readonly specs: readonly ParameterSpec[];
  /** Their views in the model's arena, in the same order. */
  readonly params: readonly Parameter[];
}

/** A state-dict entry's dtype and PyTorch shape. */
export type EntryShape = { dtype: "F32" | "I64"; shape: number[] };

/** `name` below `prefix`: "fc" below "3" is "3.fc"; below the root ("") it is "fc". */
export function statePath(prefix: string, name: string): string {
  return prefix === "" ? name : `${prefix}.${name}`;
}

/**
 * Every module under `root` (itself first), depth-first in registration order. Throws a
 * RangeError when a module is met twice (shared by two parents, or its own ancestor): on the
 * GPU a module has one place, one set of activations and one set of parameters.
 */
export function walkTree(root: Module): TreeNode[] {
  const out: TreeNode[] = [];
  const seen = new Map<Module, string>();
  const visit = (module: Module, path: string, index: number, parent: TreeNode | null) => {
    const before = seen.get(module);
    if (before !== undefined) {
      throw new RangeError(
        `Cannot use ${root.describe()}: ${module.describe()} is in it twice, at ${
          where(before)
        } and at ${where(path)}; a module can have one place only (build another one)`,
      );
    }
    seen.set(module, path);
    const node: TreeNode = { module, path, index, position: out.length - 1, parent };
    out.push(node);
    module.children().forEach(([name, child], i) => visit(child, statePath(path, name), i, node));
  };
  visit(root, "", -1, null);
  return out;
}

const where = (path: string) => (path === "" ? "the top" : `"${path}"`);

/** Whether `module` or a module below it declares parameters. */
export function hasParameters(module: Module): boolean {
  return walkTree(module).some((n) => n.module.parameterSpecs().length > 0);
}

/**
 * The names, dtypes and PyTorch shapes of the state dict of the tree `nodes`, in PyTorch's
 * order. Throws a RangeError when two entries would have the same name.
 */
export function expectedEntries(nodes: readonly TreeNode[]): Record<string, EntryShape> {
  const out: Record<string, EntryShape> = {};
  const add = (name: string, entry: EntryShape) => {
    if (name in out) {
      throw new RangeError(
        `Cannot name the state of ${nodes[0].module.describe()}: two entries are named "${name}"`,
      );
    }
    out[name] = entry;
  };
  for (const n of nodes) {
    for (const s of n.module.parameterSpecs()) {
      add(statePath(n.path, s.name), { dtype: "F32", shape: stateShape(s) });
    }
    for (const [name, s] of Object.entries(n.module.bufferShapes())) {
      add(statePath(n.path, name), s);
    }
  }
  return out;
}

/**
 * Reads the parameters' values (or gradients) of every node, and with `buffers` the modules'
 * buffers, into one state dict in PyTorch's names, layouts and order.
 */
export async function readState(
  nodes: readonly ModelNode[],
  which: "value" | "grad",
  buffers: boolean,
): Promise<Record<string, HostTensor>> {
  // Every readback in flight at once: one wait for the GPU, not one per tensor.
  const params = nodes.map((n) => Promise.all(n.params.map((p) => p[which].toFloat32())));
  const none: Record<string, HostTensor> = {};
  const extra = nodes.map((n) => buffers ? n.module.readBuffers() : Promise.resolve(none));
  const [values, held] = await Promise.all([Promise.all(params), Promise.all(extra)]);
  const out: Record<string, HostTensor> = {};
  nodes.forEach((n, k) => {
    n.params.forEach((p, j) => {
      const spec = n.specs[j];
      out[p.name] = {
        dtype: "F32",
        shape: stateShape(spec),
        data: toStateLayout(spec, values[k][j]),
      };
    });
    for (const [name, t] of Object.entries(held[k])) out[statePath(n.path, name)] = t;
  });
  return out;
}

/**
 * Loads `state` into the tree `nodes`, or throws one RangeError listing every problem (names,
 * dtypes, shapes, typed arrays, lengths, values a model cannot use) before anything is written.
 */
export function loadState(nodes: readonly ModelNode[], state: Record<string, HostTensor>): void {
  const expected = expectedEntries(nodes);
  const problems: string[] = [];
  for (const [name, e] of Object.entries(expected)) {
    const problem = entryProblem(name, state[name], e);
    if (problem !== null) problems.push(problem);
  }
  for (const name of Object.keys(state)) {
    if (!(name in expected)) problems.push(`unexpected "${name}"`);
  }
  if (problems.length > 0) {
    throw new RangeError(
      `Cannot load state dict into ${nodes[0].module.describe()}: ${problems.join("; ")}`,
    );
  }
  for (const n of nodes) {
    n.params.forEach((p, j) => {
      p.value.write(fromStateLayout(n.specs[j], state[p.name].data as Float32Array));
    });
    const names = Object.keys(n.module.bufferShapes());
    if (names.length === 0) continue;
    n.module.writeBuffers(Object.fromEntries(names.map((b) => [b, state[statePath(n.path, b)]])));
  }
}

/** num_batches_tracked is kept as a u32 on the GPU. */
const MAX_BATCHES_TRACKED = 0xffffffff;

/**
 * What is wrong with state-dict entry `name` against its expected dtype and shape, or null.
 * Checks everything a write could trip on (dtype, shape, the typed array, its length) and the
 * values a model cannot use: NaN/Inf, a negative running_var, a num_batches_tracked outside u32.
 */
function entryProblem(name: string, t: HostTensor | undefined, e: EntryShape): string | null {
  if (!t) return `missing "${name}"`;
  if (t.dtype !== e.dtype) return `"${name}" has dtype ${t.dtype}, expected ${e.dtype}`;
  if (
    !Array.isArray(t.shape) || t.shape.length !== e.shape.length ||
    t.shape.some((d, k) => d !== e.shape[k])
  ) {
    const shape = Array.isArray(t.shape) ? t.shape.join(", ") : String(t.shape);
    return `"${name}" has shape [${shape}], expected [${e.shape.join(", ")}]`;
  }
  const kind = t.dtype === "F32" ? Float32Array : BigInt64Array;
  if (!(t.data instanceof kind)) {
    return `"${name}" data must be a ${kind.name} for dtype ${t.dtype}: current value is ${
      describeData(t.data)
    }`;
  }
  const numel = e.shape.reduce((a, b) => a * b, 1); // shape [] is a scalar: one element
  if (t.data.length !== numel) return `"${name}" has ${t.data.length} values, expected ${numel}`;
  if (t.data instanceof Float32Array) {
    const data = t.data;
    if (!data.every(Number.isFinite)) return `"${name}" holds NaN or Inf`;
    const leaf = name.slice(name.lastIndexOf(".") + 1);
    const negative = leaf === "running_var" ? data.findIndex((v) => v < 0) : -1;
    if (negative >= 0) {
      return `"${name}" must be >= 0: current value at index ${negative} is ${data[negative]}`;
    }
  } else if (name.endsWith(".num_batches_tracked")) {
    const count = t.data[0];
    if (count < 0n || count > BigInt(MAX_BATCHES_TRACKED)) {
      return `"${name}" must be in [0, ${MAX_BATCHES_TRACKED}]: current value is ${count}`;
    }
  }
  return null;
}
