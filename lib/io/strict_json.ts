/**
 * A strict JSON parser for safetensors headers. `JSON.parse` silently keeps the last of duplicate
 * keys and rounds huge integers; here duplicate keys, non-integer numbers and nesting deeper
 * than 8 are errors, reported through `fail`, which must throw.
 *
 * @module
 */

/** Text for an error message, cut to 80 characters (headers may be hostile and large). */
export function cut(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

/** A value as JSON for an error message (strings in quotes), cut to 80 characters. */
export function show(value: unknown): string {
  return cut(JSON.stringify(value ?? null) ?? String(value));
}

/** A parsed JSON value; objects are Maps so that key order and duplicates are visible. */
export type Json = null | boolean | number | string | Json[] | Map<string, Json>;

const MAX_DEPTH = 8; // a valid header nests 3 deep
const INTEGER = /-?(0|[1-9][0-9]*)([.eE])?/y;

/** Parses `text` strictly; calls `fail` (which throws) with the problem. */
export function parseJson(text: string, fail: (problem: string) => never): Json {
  let i = 0;
  const at = (problem: string): never =>
    fail(`header is not valid JSON: ${problem} at character ${i}`);
  const space = () => {
    while (i < text.length && " \t\n\r".includes(text[i])) i++;
  };
  const value = (depth: number): Json => {
    if (depth > MAX_DEPTH) at(`nesting deeper than ${MAX_DEPTH}`);
    space();
    const c = text[i];
    if (c === "{") return object(depth);
    if (c === "[") return array(depth);
    if (c === '"') return string();
    if (c === "-" || (c >= "0" && c <= "9")) return number();
    for (const [word, v] of [["true", true], ["false", false], ["null", null]] as const) {
      if (text.startsWith(word, i)) {
        i += word.length;
        return v;
      }
    }
    return at(c === undefined ? "unexpected end" : `unexpected ${JSON.stringify(c)}`);
  };
  const object = (depth: number): Map<string, Json> => {
    const out = new Map<string, Json>();
    i++;
    space();
    if (text[i] === "}") return i++, out;
    for (;;) {
      space();
      if (text[i] !== '"') at("expected a key");
      const key = string();
      if (out.has(key)) fail(`header has duplicate key ${show(key)}`);
      space();
      if (text[i++] !== ":") at("expected ':'");
      out.set(key, value(depth + 1));
      space();
      const c = text[i++];
      if (c === "}") return out;
      if (c !== ",") at("expected ',' or '}'");
    }
  };
  const array = (depth: number): Json[] => {
    const out: Json[] = [];
    i++;
    space();
    if (text[i] === "]") return i++, out;
    for (;;) {
      out.push(value(depth + 1));
      space();
      const c = text[i++];
      if (c === "]") return out;
      if (c !== ",") at("expected ',' or ']'");
    }
  };
  const string = (): string => {
    const start = ++i;
    while (i < text.length && text[i] !== '"') {
      const code = text.charCodeAt(i);
      if (code < 0x20) at("control character in string");
      if (text[i] === "\\") {
        const e = text[++i];
        if (e === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 1, i + 5))) at("bad \\u escape");
          i += 4;
        } else if (!e || !'"\\/bfnrt'.includes(e)) at("bad escape");
      }
      i++;
    }
    if (i >= text.length) at("unterminated string");
    i++;
    return JSON.parse(text.slice(start - 1, i)); // validated above; JSON.parse decodes escapes
  };
  const number = (): number => {
    INTEGER.lastIndex = i;
    const match = INTEGER.exec(text);
    if (!match) return at("bad number");
    if (match[2]) at("non-integer number (headers hold only integers)");
    i += match[0].length;
    return Number(match[0]);
  };
  const result = value(0);
  space();
  if (i !== text.length) at("unexpected text after the header object");
  return result;
}
