/// <reference lib="dom" />
/**
 * The page's figures, drawn by Observable Plot into the page's own DOM: the loss curves while
 * the variants train, and the test accuracy per variant at the end. Colours are the report's
 * (lib/plot/colors.ts).
 *
 * @module
 */

// deno-lint-ignore no-import-prefix -- pinned as in lib/plot, bundled into dist/web.js
import * as Plot from "npm:@observablehq/plot@0.6.17";
import { variantColor } from "../lib/plot/colors.ts";
import type { LossPoint, RunResult } from "./train.ts";

const WIDTH = 720;

function colors(variants: readonly string[]): { domain: string[]; range: string[] } {
  return { domain: [...variants], range: variants.map((v) => variantColor(v, variants)) };
}

/**
 * Training loss (a line per variant, read back as it trains) and validation loss (dashed, a dot
 * per epoch), against epochs. Non-finite values are left out.
 */
export function lossFigure(
  points: readonly LossPoint[],
  variants: readonly string[],
): HTMLElement | SVGSVGElement {
  const finite = points.filter((p) => Number.isFinite(p.loss));
  const train = finite.filter((p) => p.split === "train");
  const val = finite.filter((p) => p.split === "val");
  return Plot.plot({
    width: WIDTH,
    height: 360,
    marginLeft: 50,
    x: { label: "epoch", domain: [0, Math.max(1, ...finite.map((p) => p.x))] },
    y: { label: "cross-entropy loss", grid: true, nice: true },
    color: { ...colors(variants), legend: true },
    marks: [
      // z named: a series of one point is not the "high cardinality" Plot warns of.
      Plot.line(train, { x: "x", y: "loss", z: "variant", stroke: "variant", strokeWidth: 1.5 }),
      Plot.line(val, {
        x: "x",
        y: "loss",
        z: "variant",
        stroke: "variant",
        strokeDasharray: "6 4",
      }),
      Plot.dot(val, { x: "x", y: "loss", stroke: "variant", fill: "white", r: 3 }),
      Plot.text(["solid: training (running), dashed: validation"], {
        frameAnchor: "top-right",
        dy: -4,
        fontSize: 11,
        fill: "#555",
      }),
    ],
  });
}

/** Test accuracy per variant, in percent, with its value on each bar. */
export function accuracyFigure(results: readonly RunResult[]): HTMLElement | SVGSVGElement {
  const variants = results.map((r) => r.variant);
  const data = results.map((r) => ({ variant: r.variant, accuracy: 100 * r.test.accuracy }));
  return Plot.plot({
    width: 360,
    height: 240,
    marginLeft: 50,
    x: { label: null, domain: variants },
    y: { label: "test accuracy (%)", domain: [0, 100], grid: true },
    color: colors(variants),
    marks: [
      Plot.barY(data, { x: "variant", y: "accuracy", fill: "variant" }),
      Plot.text(data, {
        x: "variant",
        y: "accuracy",
        text: (d: { accuracy: number }) => `${d.accuracy.toFixed(1)}%`,
        dy: -8,
      }),
      Plot.ruleY([0]),
    ],
  });
}
