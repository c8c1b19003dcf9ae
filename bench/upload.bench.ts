/**
 * UPLOAD of a big payload (SPEC §2): 500 replacement functions with about
 * 20,000 relocations (bench/_upload-fixture.ts), into a target that has the 500
 * old functions; split into parse / link / write, and the window the target's
 * threads were stopped. Baseline, same run: `dlopen(RTLD_NOW)` of the same code
 * built as a shared object, timed by the target itself (the way libpulp loads
 * patches). Also the link throughput (issue #13, goal >= 2 M relocations/s):
 * `linkPayload` alone, timed on the prepared inputs, so that the figure is the
 * relocating and nothing around it.
 */
import { archFor } from "../src/arch/index.ts";
import { createContext } from "../src/core/context.ts";
import { layoutSections, linkPayload } from "../src/core/link/index.ts";
import { IfuncResolver } from "../src/core/load/ifunc.ts";
import { placeRegions } from "../src/core/load/place.ts";
import { symbolSources } from "../src/core/load/sources.ts";
import { findTarget, type UploadTimings, unloadPayload, uploadPayload } from "../src/core/loader.ts";
import { emptyRegistry } from "../src/core/registry/records.ts";
import { openTarget } from "../src/core/session.ts";
import { SHF } from "../src/elf/index.ts";
import { readPayload } from "../src/payload/index.ts";
import { readMaps } from "../src/process/maps.ts";
import { mappedObjects } from "../src/process/objects.ts";
import { startTarget } from "../test/helpers/target.ts";
import { FUNCS, uploadFixture } from "./_upload-fixture.ts";
import { type Bench, type BenchRow, sample, stats } from "./lib.ts";

const ROUNDS = 7;

/**
 * Samples (ms) of `linkPayload` for the fixture's payload in process `pid`, with everything it needs
 * (objects, layout, placement, symbol sources) made once beforehand, as `prepareUpload` makes them.
 */
async function linkSamples(
  pid: number,
  bytes: Uint8Array,
): Promise<{ ms: number[]; cpu: number[]; relocs: number }> {
  const payload = readPayload(bytes);
  const maps = readMaps(pid);
  const objects = mappedObjects(pid, { maps });
  const target = findTarget(objects, payload, pid);
  const arch = archFor(payload.machine);
  const layout = layoutSections(payload.elf, arch);
  const placement = placeRegions(layout, target, maps);
  const sources = symbolSources(
    payload,
    target,
    objects,
    emptyRegistry(),
    new IfuncResolver(pid, createContext().ifuncs),
  );
  // The relocations linkPayload applies: those of allocated sections (.rela.debug* are skipped).
  let relocs = 0;
  for (const r of payload.elf.relocationSections()) {
    const into = payload.elf.sections[r.target];
    if (into && (into.flags & SHF.ALLOC) !== 0n) relocs += r.relocations.length;
  }
  // CPU time of each link too (this process's, user + system): on a loaded host the wall time
  // also counts the waits for a CPU, which are not the linker's.
  const cpu: number[] = [];
  const ms = await sample(
    () => {
      const c0 = process.cpuUsage();
      linkPayload(payload.elf, arch, layout, placement.bases, sources);
      const c = process.cpuUsage(c0);
      cpu.push((c.user + c.system) / 1000);
    },
    15,
    3,
  );
  return { ms, cpu: cpu.slice(3), relocs };
}

const bench: Bench = async () => {
  const { target, so, bytes, relocs } = uploadFixture();

  const t = await startTarget(target);
  const timings: Required<UploadTimings>[] = [];
  const totals: number[] = [];
  const dl: number[] = [];
  let linked: { ms: number[]; cpu: number[]; relocs: number } | undefined;
  try {
    linked = await linkSamples(t.pid, bytes);
    for (let i = 0; i < ROUNDS + 1; i++) {
      const t0 = performance.now();
      const tm = uploadPayload(t.pid, "big", bytes).timings;
      const total = performance.now() - t0;
      const s = openTarget(t.pid);
      try {
        unloadPayload(s, "big");
      } finally {
        s.close();
      }
      if (i === 0) continue; // warm-up: first reads of the objects' files, the registry's creation
      totals.push(total);
      timings.push(tm as Required<UploadTimings>);
      const from = t.lines.length;
      t.send(`dlopen ${so}`);
      const line = await t.waitFor(/^dlopen /, { from });
      const m = /^dlopen ok ([\d.]+)$/.exec(line);
      if (!m) throw new Error(`dlopen failed in the target: ${line}`);
      dl.push(Number(m[1]));
    }
  } finally {
    await t.kill();
  }
  const baseline = { name: "dlopen RTLD_NOW", stats: stats(dl) };
  const note = `${FUNCS} functions, ${relocs} relocations, ${bytes.length} bytes`;
  const l = linked!;
  const linkStats = stats(l.ms);
  const perSecond = l.relocs / (linkStats.median / 1000);
  const cpuStats = stats(l.cpu);
  const rows: BenchRow[] = [
    { name: baseline.name, stats: baseline.stats, note: "same code as a .so, timed inside the target" },
    { name: "upload total", stats: stats(totals), baseline, note },
    { name: "upload: parse (checks, readPayload)", stats: stats(timings.map((x) => x.parse)), baseline },
    {
      name: "upload: link (objects, layout, place, link, checks)",
      stats: stats(timings.map((x) => x.link)),
      baseline,
    },
    {
      name: "upload: write (seize, mmap, write, commit)",
      stats: stats(timings.map((x) => x.write)),
      baseline,
    },
    { name: "upload: threads stopped", stats: stats(timings.map((x) => x.stopped)), baseline },
    {
      name: "link throughput: linkPayload alone",
      stats: linkStats,
      note: `${l.relocs} relocations: ${(perSecond / 1e6).toFixed(2)} M relocations/s at the median (goal >= 2 M/s)`,
    },
    {
      name: "link throughput: CPU time of linkPayload",
      stats: cpuStats,
      note: `${(l.relocs / (cpuStats.median / 1000) / 1e6).toFixed(2)} M relocations per CPU-second at the median`,
    },
  ];
  return rows;
};

export default bench;
