/**
 * Bind groups remembered by what they bind, not by which JavaScript object asked: a layer that
 * alternates between a few tensors (the loader's per-batch buffers, Dropout's forward and
 * backward) reuses one bind group per combination instead of creating one per dispatch
 * (`createBindGroup` costs 7-12 µs of CPU, a step's encoding about 150 µs in all).
 *
 * @module
 */

const ids = new WeakMap<object, number>();
let nextId = 1;

/** A small number that stays with `object` for its lifetime (for cache keys). */
export function objectId(object: object): number {
  let id = ids.get(object);
  if (id === undefined) {
    id = nextId++;
    ids.set(object, id);
  }
  return id;
}

/** The key of a buffer range: which buffer, where, how long. */
export function bufferKey(binding: GPUBufferBinding): string {
  return `${objectId(binding.buffer)}@${binding.offset ?? 0}+${binding.size ?? "all"}`;
}

/**
 * The last `capacity` bind groups, keyed by a string that names every bound resource (see
 * {@link bufferKey}). A destroyed buffer's replacement is a new object with a new id, so a
 * stale group is never returned; it only waits to be evicted. The common case, the same objects
 * as last time, is answered without building a key.
 */
export class BindGroupCache {
  readonly #groups = new Map<string, GPUBindGroup>();
  #lastObjects: readonly unknown[] = [];
  #last: GPUBindGroup | null = null;

  /** Keeps at most `capacity` groups, evicting the oldest. */
  constructor(readonly capacity = 8) {}

  /**
   * The group binding `objects`: the last one again when they are the very objects of the last
   * call; else the group for `key()`, made by `make` the first time that key is seen.
   */
  get(objects: readonly unknown[], key: () => string, make: () => GPUBindGroup): GPUBindGroup {
    const last = this.#lastObjects;
    if (
      this.#last !== null && objects.length === last.length &&
      objects.every((o, i) => o === last[i])
    ) {
      return this.#last;
    }
    const name = key();
    let group = this.#groups.get(name);
    if (group === undefined) {
      group = make();
      if (this.#groups.size >= this.capacity) {
        this.#groups.delete(this.#groups.keys().next().value!);
      }
      this.#groups.set(name, group);
    }
    this.#lastObjects = [...objects];
    this.#last = group;
    return group;
  }
}
