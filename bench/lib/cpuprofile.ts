// Summarises a V8 .cpuprofile (node --cpu-prof): self time by function and by file, idle excluded.
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  /** Busy (non-idle) time in the profile, ms. */
  busyMs: number;
  topFunctions: { name: string; where: string; selfPct: number }[];
  topFiles: { where: string; selfPct: number }[];
}

function shortUrl(url: string): string {
  if (!url) return '(native)';
  const u = url.replace(/^file:\/\//, '');
  const nm = u.lastIndexOf('node_modules/');
  if (nm >= 0) return u.slice(nm + 'node_modules/'.length);
  const pk = u.indexOf('/packages/');
  if (pk >= 0) return u.slice(pk + 1);
  const b = u.indexOf('/bench/');
  if (b >= 0) return u.slice(b + 1);
  return u;
}

export function summariseProfile(file: string, top = 15): ProfileSummary {
  const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const byId = new Map<number, ProfileNode>();
  for (const n of p.nodes) byId.set(n.id, n);
  const self = new Map<number, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    self.set(id, (self.get(id) ?? 0) + (p.timeDeltas[i] ?? 0));
  }
  const fns = new Map<string, { name: string; where: string; us: number }>();
  const files = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of self) {
    const n = byId.get(id);
    if (!n) continue;
    const name = n.callFrame.functionName || '(anonymous)';
    if (name === '(idle)') continue;
    busy += us;
    const where = `${shortUrl(n.callFrame.url)}${n.callFrame.url ? `:${n.callFrame.lineNumber + 1}` : ''}`;
    const k = `${name}@${where}`;
    const f = fns.get(k) ?? { name, where, us: 0 };
    f.us += us;
    fns.set(k, f);
    const fileKey = n.callFrame.url ? shortUrl(n.callFrame.url) : name;
    files.set(fileKey, (files.get(fileKey) ?? 0) + us);
  }
  const pct = (us: number) => Math.round((1000 * us) / Math.max(1, busy)) / 10;
  return {
    file,
    busyMs: Math.round(busy / 1000),
    topFunctions: [...fns.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((f) => ({ name: f.name, where: f.where, selfPct: pct(f.us) })),
    topFiles: [...files.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([where, us]) => ({ where, selfPct: pct(us) })),
  };
}
