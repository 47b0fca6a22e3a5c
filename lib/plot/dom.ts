/**
 * A server-side DOM for Observable Plot: Plot builds its SVG through `document.createElementNS`,
 * so in Deno we hand it linkedom's document and serialise the result with `outerHTML`.
 *
 * @module
 */

// deno-lint-ignore no-import-prefix -- library code must work imported by URL, without our import map
import { parseHTML } from "npm:linkedom@0.18.15";

/** The SVG namespace; also written as the `xmlns` attribute so a saved `.svg` file opens. */
export const SVG_NS = "http://www.w3.org/2000/svg";

/**
 * The slice of a DOM element our figure helpers touch. (Deno's type library has no DOM types,
 * so we name what we use instead of `SVGElement`.)
 */
export interface DomElement {
  /** Sets an attribute (linkedom escapes only `"` in its value). */
  setAttribute(name: string, value: string): void;
  /** Appends a child element. */
  appendChild(child: DomElement): unknown;
  /** Inserts a child before `before` (a child node, or null for the end). */
  insertBefore(child: DomElement, before: unknown): unknown;
  /** The first child node, or null. */
  readonly firstChild: unknown;
  /** The text content; setting it escapes markup characters. */
  textContent: string | null;
  /** The element serialised as markup. */
  readonly outerHTML: string;
}

/** The slice of a DOM document that our figure helpers use; Plot gets the full linkedom one. */
export interface PlotDocument {
  /** Creates an element in `namespace`, e.g. {@link SVG_NS}. */
  createElementNS(namespace: string, tag: string): DomElement;
}

let shared: PlotDocument | undefined;

/** Returns a shared linkedom document (created on first use) to pass to `Plot.plot`. */
export function plotDocument(): PlotDocument {
  if (shared === undefined) {
    const window = parseHTML("<!doctype html><html><head></head><body></body></html>");
    shared = (window as unknown as { document: PlotDocument }).document;
  }
  return shared;
}

/** Creates an SVG element with the given attributes (values are stringified). */
export function svgElement(
  document: PlotDocument,
  tag: string,
  attributes: Record<string, string | number> = {},
  text?: string,
): DomElement {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  // textContent goes through the DOM, so "<", "&" in class or variant names are escaped for us.
  if (text !== undefined) element.textContent = text;
  return element;
}

/** Escapes text for HTML element content and double-quoted attribute values. */
export function escapeHtml(text: string): string {
  return text
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}
