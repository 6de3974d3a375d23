// Small helpers for writing SVG by hand: escaped text and attributes, numbers with bounded precision.

// Characters XML 1.0 does not allow anywhere, not even escaped.
const INVALID_XML = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;

/** Text or an attribute value, safe inside an XML document. */
export function esc(s: unknown): string {
  return String(s)
    .replace(INVALID_XML, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** A coordinate with at most two decimals. */
export const n = (v: number): string => String(Math.round(v * 100) / 100);

export type Attrs = Record<string, string | number | undefined | null | false>;

function attrs(a: Attrs): string {
  let out = '';
  for (const [k, v] of Object.entries(a)) {
    if (v === undefined || v === null || v === false) continue;
    out += ` ${k}="${esc(typeof v === 'number' ? n(v) : v)}"`;
  }
  return out;
}

/** An element; `children` is already SVG (use `text()` for character data). */
export function el(name: string, a: Attrs = {}, children?: string | string[]): string {
  const body = Array.isArray(children) ? children.join('') : children;
  return body === undefined || body === '' ? `<${name}${attrs(a)}/>` : `<${name}${attrs(a)}>${body}</${name}>`;
}

/** A <text> element with escaped content. */
export function text(x: number, y: number, content: string, a: Attrs = {}): string {
  return el('text', { x, y, ...a }, esc(content));
}
