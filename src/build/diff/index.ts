/**
 * `diffObjects`: object pairs built from the original and the patched source
 * in, one payload out (SPEC §13). A straight pipeline: read the target, view
 * and classify every pair, check the changed functions against the target
 * (present, big enough for a trampoline), refuse before anything is written,
 * emit each pair's code and link them into one payload with `linkPayload`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { archFor } from "../../arch/index.ts";
import { STT } from "../../elf/defs.ts";
import { XspliceError } from "../../errors.ts";
import { linkPayload, readDepends, readTarget, type Target, targetCode } from "../build.ts";
import { classify, type FuncVerdict, type PairVerdict, type Refusal } from "./classify.ts";
import { emitPair } from "./emit.ts";
import { inlinedInto } from "./inlines.ts";
import { ObjectView } from "./object.ts";

export { classify, onlyLineNumbers } from "./classify.ts";
export { compareDefs, origSide, patchedSide } from "./compare.ts";
export { correlate, shapeOf } from "./correlate.ts";
export { inlinedInto } from "./inlines.ts";
export { ObjectView } from "./object.ts";

/** One object built twice: from the original and from the patched source. */
export interface ObjectPair {
  orig: string;
  patched: string;
  /** The source it came from, for messages (default: the patched object's path). */
  source?: string;
}

/** Inputs of {@link diffObjects}. */
export interface DiffOptions {
  pairs: ObjectPair[];
  /** The target object (executable or shared library), as linked from the original objects. */
  target: string;
  out: string;
  /** Leave out functions whose only change is an embedded line number. */
  ignoreLineChanges?: boolean;
  /** A previous payload to stack on (SPEC §4). */
  depends?: string;
  /** Compiler used to assemble the notes (default `cc`). */
  cc?: string;
  /** `name=` in `.modinfo`. */
  name?: string;
}

/** One function in the report. */
export interface FuncReport {
  name: string;
  /** Source object it came from. */
  source: string;
  status: "unchanged" | "changed" | "new" | "line-only" | "inlined";
  reason: string;
}

/**
 * A function with no code of its own in the patched object, inlined into
 * callers that all changed: if the patch changed it, the change reaches the
 * target through them (SPEC §13).
 */
export interface InlinedReport {
  name: string;
  source: string;
  /** Its callers (functions holding an inlined copy), all changed and in the payload. */
  callers: string[];
}

/** What {@link diffObjects} made. */
export interface DiffResult {
  path: string;
  /** The target's build-id, hex. */
  target: string;
  /** The payload's build-id, hex. */
  buildId: string;
  /** Every function of the patched objects with its verdict (what `--verbose` prints). */
  all: FuncReport[];
  /** Functions inlined everywhere whose callers all changed (also in `all`, status "inlined"). */
  inlined: InlinedReport[];
  /** Hook kinds carried from the patched source. */
  hooks: string[];
  stats: { functions: number; changed: number; new: number; bytes: number };
}

function read(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new XspliceError(code === "EACCES" ? "EACCES" : "ENOENT", `${what} ${path}: cannot read (${code})`);
  }
}

/** Refusals that need the target: a changed function it lacks, or one too small for a trampoline. */
function checkAgainstTarget(v: PairVerdict, f: FuncVerdict, target: Target): Refusal | undefined {
  const name = v.orig.targetName(f.orig!.sym);
  const found = target.symbols.lookup(name);
  if (found.kind !== "found" || found.symbol.type !== STT.FUNC) {
    const why = found.kind === "ambiguous" ? "is ambiguous" : "is not a function";
    return { name, reason: `${why} in target ${target.path} (was the target built from these objects?)` };
  }
  const arch = archFor(target.elf.header.machine);
  const need = arch.minPatchSize(targetCode(target.elf, found.symbol.value, 16));
  if (found.symbol.size < BigInt(need)) {
    return {
      name,
      reason: `changed function is ${found.symbol.size} bytes, too small for a trampoline (needs ${need})`,
    };
  }
  return undefined;
}

/** A function's name without gcc's clone suffixes (`f.constprop.0` -> `f`): DWARF names the source function. */
function sourceName(name: string): string {
  const dot = name.indexOf(".");
  return dot < 0 ? name : name.slice(0, dot);
}

/**
 * Functions of the patched object that have no code of their own and are
 * inlined only into functions that changed. A changed function inlined
 * everywhere has no symbol, so nothing in the object names it: DWARF's
 * inlined copies do. Exact in one direction: a changed helper always shows
 * (its copies changed, so its callers did); a helper whose callers changed
 * for reasons of their own shows too, and the report says so.
 */
function inlinedEverywhere(v: PairVerdict, changed: ReadonlySet<string>, source: string): InlinedReport[] {
  const out: InlinedReport[] = [];
  const ownCode = new Set<string>();
  for (const [name, d] of v.patched.defs) if (d.code) ownCode.add(sourceName(name));
  for (const [callee, callers] of inlinedInto(v.patched)) {
    if (ownCode.has(callee) || callers.size === 0) continue;
    const list = [...callers].sort();
    if (list.every((c) => changed.has(c))) out.push({ name: callee, source, callers: list });
  }
  return out.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Diff the pairs and write one payload to `out`. Errors: an unreadable input
 * `ENOENT`; an object not built with `-ffunction-sections` `EINVAL`; any
 * refusal (SPEC §13) `EOPNOTSUPP` naming every refused symbol, nothing
 * written; no change at all `EINVAL`.
 */
export function diffObjects(opts: DiffOptions): DiffResult {
  if (opts.pairs.length === 0) throw new XspliceError("EINVAL", "no object pairs to diff");
  const target = readTarget(opts.target);
  const depends = opts.depends === undefined ? target.buildId : readDepends(opts.depends, target);
  const verdicts = opts.pairs.map((p) => {
    const orig = new ObjectView(p.orig, read(p.orig, "original object"));
    const patched = new ObjectView(p.patched, read(p.patched, "patched object"));
    if (
      orig.elf.header.machine !== target.elf.header.machine ||
      patched.elf.header.machine !== orig.elf.header.machine
    ) {
      throw new XspliceError("EINVAL", `${p.patched}: machine differs from target ${target.path}`);
    }
    return { pair: p, v: classify(orig, patched) };
  });

  const all: FuncReport[] = [];
  const inlined: InlinedReport[] = [];
  const refused: Refusal[] = [];
  const plan: { v: PairVerdict; include: FuncVerdict[]; entries: FuncVerdict[] }[] = [];
  let changed = 0;
  let added = 0;
  for (const { pair, v } of verdicts) {
    const source = pair.source ?? pair.patched;
    refused.push(...v.refused);
    const include: FuncVerdict[] = [];
    const entries: FuncVerdict[] = [];
    for (const f of v.funcs) {
      let status: FuncReport["status"] = f.status;
      if (f.status === "changed" && f.lineOnly && opts.ignoreLineChanges) status = "line-only";
      all.push({
        name: f.name,
        source,
        status,
        reason: status === "line-only" ? "line numbers only (left out)" : f.reason,
      });
      if (status === "changed") {
        const r = checkAgainstTarget(v, f, target);
        if (r !== undefined) refused.push(r);
        include.push(f);
        entries.push(f);
        changed++;
      } else if (status === "new") {
        include.push(f);
        added++;
      }
    }
    plan.push({ v, include, entries });
    if (entries.length > 0) {
      const names = new Set(entries.map((f) => sourceName(f.name)));
      for (const r of inlinedEverywhere(v, names, source)) {
        inlined.push(r);
        all.push({
          name: r.name,
          source,
          status: "inlined",
          reason: `no code of its own: inlined into ${r.callers.join(", ")}, ${r.callers.length === 1 ? "which changed and is" : "which all changed and are"} patched instead (a change to ${r.name} reaches the target through ${r.callers.length === 1 ? "it" : "them"})`,
        });
      }
    }
  }
  if (refused.length > 0) {
    const lines = refused.map((r) => `${r.name}: ${r.reason}`);
    throw new XspliceError("EOPNOTSUPP", `refused: ${lines.join("; ")}`, { symbol: refused[0]!.name });
  }
  const tmp = mkdtempSync(join(tmpdir(), "xsplice-diff-"));
  try {
    const objects: string[] = [];
    const hooks: string[] = [];
    let bytes = 0;
    plan.forEach(({ v, include, entries }, i) => {
      if (include.length === 0 && !v.patched.elf.sections.some((s) => s.name.startsWith(".xsplice.hooks.")))
        return;
      const e = emitPair(v, include, entries);
      const file = join(tmp, `pair${i}.o`);
      writeFileSync(file, e.bytes);
      objects.push(file);
      hooks.push(...e.hooks);
      bytes += e.codeBytes;
    });
    if (changed === 0 && hooks.length === 0) {
      const why = all.some((f) => f.status === "line-only") ? " (only line numbers changed)" : "";
      throw new XspliceError("EINVAL", `no function changed${why}: nothing to patch`);
    }
    const built = linkPayload({
      objects,
      target,
      depends,
      metadata: opts.name === undefined ? [] : [`name=${opts.name}`],
      cc: opts.cc ?? "cc",
      tmp,
      out: opts.out,
    });
    return {
      path: built.path,
      target: built.target,
      buildId: built.buildId,
      all,
      inlined,
      hooks,
      stats: { functions: all.length - inlined.length, changed, new: added, bytes },
    };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
