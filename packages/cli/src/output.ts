// Human output (aligned tables, key-value blocks) and machine output (JSON).

export interface Column<T> {
  header: string;
  /** Server data may not match the types we expect: whatever comes back is shown as text. */
  value: (row: T) => unknown;
  align?: 'left' | 'right';
}

/** Plain-text table: upper-case headers, columns separated by two spaces, no trailing blanks. */
export function formatTable<T>(columns: readonly Column<T>[], rows: readonly T[]): string {
  const cells = rows.map((row) => columns.map((c) => clean(c.value(row))));
  const headers = columns.map((c) => c.header.toUpperCase());
  const widths = headers.map((h, i) => Math.max(width(h), ...cells.map((r) => width(r[i] as string))));
  const line = (values: readonly string[]): string =>
    values
      .map((v, i) => {
        const pad = ' '.repeat((widths[i] as number) - width(v));
        return columns[i]?.align === 'right' ? pad + v : v + pad;
      })
      .join('  ')
      .trimEnd();
  return [line(headers), ...cells.map(line)].join('\n') + '\n';
}

/** `key  value` lines with the values aligned. Undefined values are left out. */
export function formatKeyValues(pairs: readonly (readonly [string, unknown])[]): string {
  const present = pairs.filter((p) => p[1] !== undefined && p[1] !== null);
  const w = Math.max(0, ...present.map(([k]) => width(k)));
  return present.map(([k, v]) => `${k}${' '.repeat(w - width(k))}  ${clean(v)}`.trimEnd()).join('\n') + '\n';
}

/** Machine output: the value as JSON, nothing else. */
export function formatJson(value: unknown): string {
  return JSON.stringify(value, null, 2) + '\n';
}

/** `k=v, k2=v2`, with non-string values as JSON. */
export function formatAttributes(attributes: Readonly<Record<string, unknown>> | undefined): string {
  if (attributes === undefined) return '';
  return Object.entries(attributes)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(', ');
}

/**
 * Values come from the server and may hold anything: control characters (terminal escape sequences,
 * newlines that break the table) are shown escaped, never sent to the terminal as they are.
 */
export function clean(value: unknown): string {
  const text =
    typeof value === 'string'
      ? value
      : value === undefined || value === null
        ? ''
        : typeof value === 'object'
          ? JSON.stringify(value)
          : String(value);
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    return `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  });
}

/** Display width: code points, counting common East Asian wide characters and emoji as two. */
function width(text: string): number {
  let w = 0;
  for (const ch of text) {
    const cp = ch.codePointAt(0) as number;
    w += isWide(cp) ? 2 : 1;
  }
  return w;
}

function isWide(cp: number): boolean {
  return (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0xa4cf) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1faff) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
  );
}

export function yesNo(v: boolean | undefined): string | undefined {
  return v === undefined ? undefined : v ? 'yes' : 'no';
}
