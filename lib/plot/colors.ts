/**
 * The variants' colours, shared by the report's figures and the training page (this module
 * imports nothing, so a browser bundle can take it without the server-side DOM).
 *
 * @module
 */

const SEED_COLORS: Record<string, string> = { plain: "#4e79a7", bn: "#f28e2b", dropout: "#59a14f" };
const OTHER_COLORS = ["#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

/**
 * The colour of a variant in every figure: the lecture's three keep fixed colours, others take the
 * next free colour by their position among `variants`.
 */
export function variantColor(variant: string, variants: readonly string[]): string {
  if (variant in SEED_COLORS) return SEED_COLORS[variant];
  const others = variants.filter((v) => !(v in SEED_COLORS));
  return OTHER_COLORS[Math.max(0, others.indexOf(variant)) % OTHER_COLORS.length];
}
