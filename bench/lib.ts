/**
 * Small timing kit for `npm run bench`: every benchmark reports figures and a
 * ratio against a baseline measured in the same run on the same machine.
 */

/** min/median/p95 of a set of samples, in milliseconds. */
export interface Stats {
  n: number;
  min: number;
  median: number;
  p95: number;
}

/** One printed line: a measurement, optionally compared to a baseline. */
export interface BenchRow {
  name: string;
  stats: Stats;
  /** Baseline measured in the same run, if this row is compared to one. */
  baseline?: { name: string; stats: Stats };
  /** Free-form note, e.g. sizes involved. */
  note?: string;
}

/** A benchmark module's default export. */
export type Bench = () => Promise<BenchRow[]>;

/** Summarise samples (ms). */
export function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
  return { n: s.length, min: s[0] ?? Number.NaN, median: at(0.5), p95: at(0.95) };
}

/** Time `fn` `iterations` times after `warmup` untimed runs; returns samples in ms. */
export async function sample(fn: () => unknown, iterations: number, warmup = 1): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < iterations; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return out;
}

function fmt(ms: number): string {
  return ms >= 100 ? ms.toFixed(0) : ms >= 1 ? ms.toFixed(2) : ms.toFixed(3);
}

/** Render rows as an aligned text table. */
export function formatRows(rows: BenchRow[]): string {
  const lines = [
    `${"benchmark".padEnd(48)} ${"n".padStart(5)} ${"min ms".padStart(9)} ${"median".padStart(9)} ${"p95".padStart(9)}  ratio (median vs baseline)`,
  ];
  for (const r of rows) {
    const s = r.stats;
    let ratio = "";
    if (r.baseline) {
      const b = r.baseline.stats;
      ratio = `${(s.median / b.median).toFixed(2)}x ${r.baseline.name} (${fmt(b.median)} ms)`;
    }
    lines.push(
      `${r.name.padEnd(48)} ${String(s.n).padStart(5)} ${fmt(s.min).padStart(9)} ${fmt(s.median).padStart(9)} ${fmt(s.p95).padStart(9)}  ${ratio}${r.note ? `  [${r.note}]` : ""}`,
    );
  }
  return lines.join("\n");
}
