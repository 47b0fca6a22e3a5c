/**
 * Figure 5: the validation confusion matrix as a labelled heatmap (true class down, predicted
 * class across, the count written in each cell).
 *
 * @module
 */

// deno-lint-ignore no-import-prefix -- library code must work imported by URL, without our import map
import * as Plot from "npm:@observablehq/plot@0.6.17";
import type { History } from "../train/history.ts";
import { type DomElement, plotDocument } from "./dom.ts";
import { frame, type LegendItem, MARGIN_TOP } from "./frame.ts";

interface Cell {
  actual: string;
  predicted: string;
  count: number;
}

/**
 * Draws `history.confusion` (confusion[true][predicted] = count) with the class names on both
 * axes. Throws when the history has no confusion matrix.
 *
 * @example Write one variant's confusion matrix
 * ```ts ignore
 * if (history.confusion) await Deno.writeTextFile("out/bn/confusion.svg", confusionFigure(history));
 * ```
 */
export function confusionFigure(history: History): string {
  const { confusion, classes, variant } = history;
  if (confusion === undefined) {
    throw new TypeError(`Cannot draw confusion matrix of "${variant}": the history has none`);
  }
  if (confusion.length !== classes.length || confusion.some((r) => r.length !== classes.length)) {
    throw new RangeError(
      `Cannot draw confusion matrix of "${variant}": expected ${classes.length}×${classes.length} ` +
        `for ${classes.length} classes: current rows are [${confusion.map((r) => r.length)}]`,
    );
  }
  // Class names must be unique to serve as band-scale keys; number any repeats.
  const names = classes.map((c, i) => (classes.indexOf(c) === i ? c : `${c} (${i})`));
  const cells: Cell[] = [];
  let total = 0, correct = 0, max = 0;
  confusion.forEach((row, t) =>
    row.forEach((count, p) => {
      cells.push({ actual: names[t], predicted: names[p], count });
      total += count;
      if (t === p) correct += count;
      max = Math.max(max, count);
    })
  );
  // Dark text on light cells, white on dark: the "blues" ramp darkens past about 55 %.
  const dark = (d: Cell) => d.count > 0.55 * max;
  const labelWidth = Math.max(...names.map((n) => n.length), 4) * 6 + 16;
  const size = Math.max(20, Math.min(52, Math.floor(520 / Math.max(1, names.length))));
  const svg = Plot.plot({
    document: plotDocument(),
    width: labelWidth + 40 + size * names.length + 20,
    height: MARGIN_TOP + size * names.length + labelWidth + 10,
    marginTop: MARGIN_TOP,
    marginLeft: labelWidth + 40,
    marginRight: 20,
    marginBottom: labelWidth + 10,
    style: { fontSize: "11px" },
    grid: true,
    x: {
      type: "band",
      domain: names,
      label: "predicted class",
      labelAnchor: "center",
      labelArrow: "none",
      tickRotate: -40,
    },
    y: {
      type: "band",
      domain: names,
      label: "true class",
      labelAnchor: "center",
      labelArrow: "none",
    },
    color: { type: "linear", scheme: "blues", domain: [0, Math.max(1, max)] },
    marks: [
      Plot.cell(cells, { x: "predicted", y: "actual", fill: "count", inset: 0.5 }),
      Plot.text(cells.filter((d) => !dark(d)), {
        x: "predicted",
        y: "actual",
        text: "count",
        fill: "#1a1a1a",
      }),
      Plot.text(cells.filter(dark), { x: "predicted", y: "actual", text: "count", fill: "white" }),
    ],
  });
  const color = (svg as unknown as { scale(name: "color"): { apply(v: number): string } }).scale(
    "color",
  );
  const steps = [0, 0.25, 0.5, 0.75, 1].map((f) => Math.round(f * max));
  const legend: LegendItem[] = [...new Set(steps)].map((v) => ({
    name: String(v),
    color: color.apply(v),
    swatch: "rect",
  }));
  const accuracy = total > 0
    ? ` — accuracy ${(100 * correct / total).toFixed(1)}% of ${total}`
    : "";
  return frame(
    svg as unknown as DomElement,
    `Confusion matrix: ${variant}${accuracy}`,
    legend,
    "count",
  );
}
