/** The plain-text table every listing prints (k3s's layout). No imports: loading it costs nothing. */

/** Columns padded like Go's tabwriter with padding 1; no trailing blanks when the last cell is empty. */
export function table(rows: readonly (readonly string[])[]): string {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return `${rows
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd((widths[i] ?? 0) + 1)))
        .join('')
        .trimEnd(),
    )
    .join('\n')}\n`;
}
