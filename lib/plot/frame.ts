/**
 * The parts every figure shares and Plot would otherwise put outside the SVG: the title and a
 * swatch legend, drawn into the SVG's top margin so that each figure is one standalone `<svg>`.
 *
 * @module
 */

import { type DomElement, plotDocument, SVG_NS, svgElement } from "./dom.ts";

/** Top margin that holds the title (baseline y = 22) and the legend row (y ≈ 46). */
export const MARGIN_TOP = 66;
/** Left margin; the legend row starts here, above the frame. */
export const MARGIN_LEFT = 62;

/** One legend entry: a line swatch (series) or a filled square (heatmap steps). */
export interface LegendItem {
  /** The series name (shown unless `label` is given). */
  name: string;
  /** CSS colour of the swatch. */
  color: string;
  /** Swatch shape: a line (default) or a filled square. */
  swatch?: "line" | "rect";
  /** Text shown instead of `name`. */
  label?: string;
}

/**
 * Adds `xmlns`, a `<title>`, the heading text and a swatch legend (after an optional
 * `legendTitle`) into the top margin of a Plot SVG, and serialises it.
 */
export function frame(
  svg: DomElement,
  title: string,
  legend: LegendItem[],
  legendTitle?: string,
): string {
  const doc = plotDocument();
  svg.setAttribute("xmlns", SVG_NS);
  svg.setAttribute("role", "img");
  // The title goes in <title>, not aria-label: linkedom does not escape "<" or "&" in attribute
  // values, so names with markup characters would make the SVG malformed.
  svg.insertBefore(svgElement(doc, "title", {}, title), svg.firstChild);
  svg.appendChild(
    svgElement(doc, "text", {
      x: 12,
      y: 22,
      "text-anchor": "start",
      "font-size": 15,
      "font-weight": "bold",
      class: "figure-title",
    }, title),
  );
  const g = svgElement(doc, "g", {
    "aria-label": "legend",
    "text-anchor": "start",
    "font-size": 11,
  });
  let x = 12;
  if (legendTitle !== undefined) {
    g.appendChild(svgElement(doc, "text", { x, y: 50, "font-weight": "bold" }, legendTitle));
    x += legendTitle.length * 6.5 + 10;
  } else {
    x = MARGIN_LEFT;
  }
  for (const item of legend) {
    const label = item.label ?? item.name;
    if (item.swatch === "rect") {
      g.appendChild(svgElement(doc, "rect", { x, y: 40, width: 14, height: 12, fill: item.color }));
    } else {
      g.appendChild(svgElement(doc, "line", {
        x1: x,
        x2: x + 18,
        y1: 46,
        y2: 46,
        stroke: item.color,
        "stroke-width": 2.5,
      }));
    }
    g.appendChild(svgElement(doc, "text", { x: x + 22, y: 50, class: "legend-label" }, label));
    // No text metrics on a server-side DOM: estimate 6.5 px per character at 11 px.
    x += 22 + label.length * 6.5 + 20;
  }
  svg.appendChild(g);
  // Plot numbers its clip paths per process ("plot-clip-3"); figures inlined together from
  // different runs could collide, so ids are renamed after the title, which is unique per figure.
  const slug = title.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
  return svg.outerHTML.replace(/(id="|url\(#)plot-(clip-\d+)/g, `$1fig-${slug}-$2`);
}
