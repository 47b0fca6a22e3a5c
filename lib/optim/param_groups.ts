/**
 * Parameter groups with their own options, as PyTorch's
 * `torch.optim.AdamW([{"params": decay}, {"params": no_decay, "weight_decay": 0}], lr=1e-3)`:
 * each group's options are the optimizer's, overridden by the group's own.
 *
 * @module
 */

import type { ParameterGroup } from "./group.ts";
import type { RuleGroup, RuleSpec } from "./optimizer.ts";

/** Options that apply to the whole optimizer and so cannot differ between groups. */
const WIDE = ["clipGradValue", "clipGradNorm"] as const;

/**
 * One parameter group: its parameters and the options it sets differently from the optimizer's
 * (any option but the optimizer-wide `clipGradValue` and `clipGradNorm`).
 *
 * @example No weight decay on biases and norms
 * ```ts
 * import { AdamW, type Sequential } from "@wgnn/wgnn";
 *
 * function adamW(model: Sequential): AdamW {
 *   const params = [...model.parameters()];
 *   const decay = params.filter((p) => p.value.shape.length > 1); // Linear weights
 *   const noDecay = params.filter((p) => p.value.shape.length === 1); // biases, BatchNorm γ, β
 *   return new AdamW([{ params: decay }, { params: noDecay, weightDecay: 0 }], {
 *     lr: 1e-3,
 *     weightDecay: 0.05,
 *   });
 * }
 * ```
 */
export type ParamGroup<O> =
  & { readonly params: ParameterGroup }
  & Readonly<Partial<Omit<O, "clipGradValue" | "clipGradNorm">>>;

/** What an optimizer takes: one group of parameters, or a list of {@link ParamGroup}s. */
export type OptimizerParams<O> = ParameterGroup | readonly ParamGroup<O>[];

/** A validated rule and the options in effect, as a subclass's spec builder returns them. */
export interface BuiltRule<O> {
  /** The rule for {@link Optimizer}. */
  spec: RuleSpec;
  /** The options with every default filled in. */
  options: Required<O>;
}

/**
 * Splits `params` into the optimizer's base rule and, for a list of groups, one rule per group
 * built from the options overridden by the group's own. `build(options, what)` validates and
 * builds one rule, naming problems after `what`.
 */
export function ruleGroups<O extends object>(
  name: string,
  params: OptimizerParams<O>,
  options: O,
  build: (options: O, what: string) => BuiltRule<O>,
): { base: BuiltRule<O>; groups: ParameterGroup | RuleGroup[] } {
  const what = `Cannot create ${name}`;
  const base = build(options, what);
  if (!isGroupList(params)) return { base, groups: params as ParameterGroup };
  const known = Object.keys(base.options).filter((k) => !(WIDE as readonly string[]).includes(k));
  const groups = params.map((group, i): RuleGroup => {
    const { params: own, ...overrides } = group as ParamGroup<O>;
    for (const key of Object.keys(overrides)) {
      if ((WIDE as readonly string[]).includes(key)) {
        throw new RangeError(
          `${what}: param group ${i} sets ${key}, which applies to the whole optimizer: pass it in the options`,
        );
      }
      if (!known.includes(key)) {
        throw new RangeError(
          `${what}: param group ${i} has an unknown option "${key}" (options: ${known.join(", ")})`,
        );
      }
    }
    const defined = Object.fromEntries(
      Object.entries(overrides).filter(([, v]) => v !== undefined),
    );
    const merged = { ...options, ...defined } as O;
    return { params: own, rule: build(merged, `${what}: param group ${i}`).spec };
  });
  return { base, groups };
}

/** A non-empty array whose entries are all `{ params, ... }`; a mix with tensor pairs is refused. */
function isGroupList<O>(params: OptimizerParams<O>): params is readonly ParamGroup<O>[] {
  if (!Array.isArray(params) || params.length === 0) return false;
  const grouped = params.map((g) => g !== null && typeof g === "object" && "params" in g);
  if (grouped.every((g) => g)) return true;
  const i = grouped.indexOf(true);
  if (i >= 0) {
    throw new TypeError(
      `Cannot create the optimizer: params mixes parameter groups ({ params }, e.g. params[${i}]) with tensors ({ value, grad }, params[${
        grouped.indexOf(false)
      }])`,
    );
  }
  return false;
}
