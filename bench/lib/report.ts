// The Bulwark/Mosquitto ratio table printed at the end of a run.
import type { Figure } from './types.ts';

/** ≥ 1 means Bulwark is as good or better, whichever direction is good for the figure. */
export function ratio(f: Figure): number | null {
  if (f.bulwark === null || f.mosquitto === null) return null;
  const floor = f.resolution ?? 0;
  const b = Math.max(f.bulwark, floor);
  const m = Math.max(f.mosquitto, floor);
  if (f.better === 'higher') return m === 0 ? null : b / m;
  return b === 0 ? null : m / b;
}

function num(v: number | null): string {
  if (v === null || !Number.isFinite(v)) return '—';
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US').replace(/,/g, ' ');
  if (Math.abs(v) >= 100) return String(Math.round(v));
  return String(Math.round(v * 100) / 100);
}

export function formatFigures(
  figures: (Figure & { suite: string })[],
  machine: Record<string, unknown>,
): string {
  const lines: string[] = [];
  lines.push(
    `Bulwark / Mosquitto — ${String(machine.cpu)}, ${String(machine.cores)} cores, Node ${String(machine.node)}, ` +
      `Mosquitto ${String(machine.mosquitto)}`,
  );
  lines.push('ratio ≥ 1: Bulwark as good or better (higher-is-better rows: B/M; lower-is-better rows: M/B)');
  lines.push('"≥ x": the load generator ran out before that broker did, so x is a lower bound');
  lines.push('');
  const rows = figures.map((f) => {
    const r = ratio(f);
    const mark = f.better === 'higher' ? '≥ ' : '≤ ';
    const b = (f.bound?.bulwark && f.bulwark !== null ? mark : '') + num(f.bulwark);
    const m = (f.bound?.mosquitto && f.mosquitto !== null ? mark : '') + num(f.mosquitto);
    // A bound on Mosquitto's side bounds the ratio from above, one on Bulwark's from below.
    const rb =
      f.bound?.mosquitto && !f.bound.bulwark ? '≤ ' : f.bound?.bulwark && !f.bound.mosquitto ? '≥ ' : '';
    // A figure without a Mosquitto counterpart (platform suites) has no ratio: the cell stays empty.
    const rs =
      f.mosquitto === null
        ? ''
        : r === null
          ? '—'
          : f.bound?.bulwark && f.bound.mosquitto
            ? `~${r.toFixed(2)}`
            : rb + r.toFixed(2);
    return [f.name, f.unit, b, m, f.better === 'higher' ? '↑' : '↓', rs];
  });
  const head = ['figure', 'unit', 'Bulwark', 'Mosquitto', 'good', 'ratio'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const fmt = (r: string[]) =>
    r.map((c, i) => (i >= 2 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  lines.push(fmt(head));
  lines.push(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) lines.push(fmt(r));
  const notes = figures.filter((f) => f.note).map((f) => `  * ${f.name}: ${f.note}`);
  if (notes.length) {
    lines.push('');
    lines.push('notes:');
    lines.push(...notes);
  }
  if (figures.length === 0) lines.push('(no figures: no suite compared the two brokers)');
  return lines.join('\n');
}
