// Version order and hardware matching, the same rules the platform applies to campaigns.

/** Version-aware comparison: numeric runs compare as numbers, the rest as text (`2.10.0 > 2.9.1`). */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.\-+_]/);
  const pb = b.split(/[.\-+_]/);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i];
    const y = pb[i];
    if (x === undefined) return -1;
    if (y === undefined) return 1;
    const nx = /^\d+$/.test(x) ? Number(x) : NaN;
    const ny = /^\d+$/.test(y) ? Number(y) : NaN;
    if (!Number.isNaN(nx) && !Number.isNaN(ny)) {
      if (nx !== ny) return nx < ny ? -1 : 1;
    } else if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}

/** A release's hardware list (`model` or `model@revision`) includes this device. */
export function hardwareMatches(
  list: readonly string[],
  model: string,
  revision: string | undefined,
): boolean {
  return list.some((h) => {
    const at = h.indexOf('@');
    if (at < 0) return h === model;
    return h.slice(0, at) === model && h.slice(at + 1) === revision;
  });
}
