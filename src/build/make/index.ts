/**
 * `makePayload`: a source tree and a patch in, a payload out (SPEC §13).
 * Copy the tree twice, patch one copy with `patch -p1`, build both with the
 * user's build command through the compiler wrapper (which keeps a copy of
 * every object it compiled), pair the compiles of the two builds, pick for
 * each source the compile the target was linked from, check that the
 * rebuilt original is the running target, keep the pairs whose program
 * sections differ, and hand them to `diffObjects`.
 */
import { spawn } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, relative, resolve } from "node:path";
import { EM, ET, PT, R_X86_64, SHF, SHT, STB, STT } from "../../elf/defs.ts";
import type { Rela } from "../../elf/index.ts";
import { XspliceError } from "../../errors.ts";
import { oneLineDiagnostic, runTool } from "../_toolchain.ts";
import { readTarget, type Target, targetCode } from "../build.ts";
import { maskRelocations } from "../diff/compare.ts";
import { type DiffResult, diffObjects, type ObjectPair } from "../diff/index.ts";
import { ObjectView } from "../diff/object.ts";
import { type Compile, installWrappers, parseLog } from "./wrapper.ts";

export { installWrappers, MAKE_CFLAGS, parseLog } from "./wrapper.ts";

/** Inputs of {@link makePayload}. */
export interface MakeOptions {
  /** The source tree the target was built from (unpatched). */
  src: string;
  /** Patches for `patch -p1`, applied in order. */
  patches: string[];
  target: string;
  out: string;
  /** Parallel jobs for the default `make` (`-j N`). */
  jobs?: number;
  ignoreLineChanges?: boolean;
  /** The build command, run in the tree's root (default `make -j N`). */
  command?: string[];
  /** Progress lines (phase, objects, elapsed); none when absent. */
  progress?: (line: string) => void;
  /** The real C compiler behind the wrapper (default `cc`). */
  cc?: string;
  name?: string;
}

/** What {@link makePayload} made: the diff's result and what the builds did. */
export interface MakeResult extends DiffResult {
  /** Objects built per tree, objects that differ, objects diffed. */
  objects: { built: number; differing: number; diffed: number };
}

function seconds(start: number): string {
  return `${((Date.now() - start) / 1000).toFixed(1)} s`;
}

/** Run the build command in `dir` with the wrapper as CC/CXX, reporting progress; EINVAL with its output on failure. */
async function runBuild(
  phase: string,
  dir: string,
  opts: MakeOptions,
  env: NodeJS.ProcessEnv,
  log: string,
  total: number | undefined,
): Promise<void> {
  const wrapperVars = [`CC=${env["CC"]}`, `CXX=${env["CXX"]}`];
  const command = opts.command ?? ["make", `-j${opts.jobs ?? 1}`, ...wrapperVars];
  const start = Date.now();
  const built = () => (existsSync(log) ? readFileSync(log, "utf8").split("\n").length - 1 : 0);
  const timer = setInterval(() => {
    opts.progress?.(
      `${phase}: ${built()}${total === undefined ? "" : `/${total}`} objects, ${seconds(start)}`,
    );
  }, 1000);
  try {
    const output: string[] = [];
    const status = await new Promise<number | string>((done) => {
      const child = spawn(command[0]!, command.slice(1), {
        cwd: dir,
        env,
        stdio: ["ignore", "pipe", "pipe"],
      });
      child.stdout.setEncoding("utf8").on("data", (d: string) => output.push(d));
      child.stderr.setEncoding("utf8").on("data", (d: string) => output.push(d));
      child.on("error", (err) => done((err as NodeJS.ErrnoException).code ?? err.message));
      child.on("close", (code, signal) => done(code ?? signal ?? -1));
    });
    if (status !== 0) {
      const text = output.join("").slice(-20_000);
      const why = oneLineDiagnostic(text) || `exit status ${status}`;
      throw new XspliceError(
        "EINVAL",
        `${phase}: '${command.join(" ")}' failed: ${why}`,
        {},
        { cause: text },
      );
    }
    opts.progress?.(`${phase}: done, ${built()} objects, ${seconds(start)}`);
  } finally {
    clearInterval(timer);
  }
}

/** Program content of an object: every allocated section and its relocations, without debug info. */
function programKey(view: ObjectView): string {
  const parts: string[] = [];
  const alloc = new Set<number>();
  for (const s of view.elf.sections) if ((s.flags & SHF.ALLOC) !== 0n) alloc.add(s.index);
  for (const s of view.elf.sections) {
    const relocates = s.type === SHT.RELA && alloc.has(s.info);
    if (!alloc.has(s.index) && !relocates && s.type !== SHT.SYMTAB && s.type !== SHT.STRTAB) continue;
    if (s.name === ".shstrtab") continue;
    parts.push(`${s.name}:${s.type}:${s.size}:${Buffer.from(s.data()).toString("base64")}`);
  }
  return parts.join("|");
}

/** The files named by the target's STT_FILE symbols (base names): which objects were linked into it. */
function targetFiles(target: Target): Set<string> {
  const out = new Set<string>();
  for (const s of target.elf.symbols()) if (s.type === STT.FILE && s.name !== "") out.add(basename(s.name));
  return out;
}

/** How one rebuilt object corresponds to the target: functions equal to the target's, and those that differ. */
interface Correspondence {
  matched: number;
  wrong: string[];
}

/**
 * The rebuilt original must be the target (SPEC §13): every function of the
 * object that the target has must have its size and, relocation fields
 * masked, its bytes. Returns how many do, and what differs, first few first.
 */
function correspondence(view: ObjectView, target: Target): Correspondence {
  const out: string[] = [];
  let matched = 0;
  if (view.elf.header.machine !== EM.X86_64) return { matched, wrong: out }; // the relaxations below are x86-64's
  for (const def of view.defs.values()) {
    if (!def.code) continue;
    const name =
      def.sym.bind === STB.LOCAL && view.file ? `${basename(view.file)}#${def.sym.name}` : def.sym.name;
    const found = target.symbols.lookup(name);
    if (found.kind !== "found" || found.symbol.type !== STT.FUNC) continue;
    const t = found.symbol;
    if (t.size !== def.sym.size) {
      out.push(`${name} (${t.size} bytes in the target, ${def.sym.size} rebuilt)`);
      continue;
    }
    const relocs = view.relocationsIn(def.section, def.sym.value, def.sym.size);
    const mine = maskLinkerEdits(view, view.bytesOf(def), relocs, def.sym.value);
    const theirs = maskLinkerEdits(
      view,
      targetCode(target.elf, t.value, Number(t.size)),
      relocs,
      def.sym.value,
    );
    const at = mine.findIndex((b, i) => b !== theirs[i]);
    if (at >= 0 || theirs.length !== mine.length)
      out.push(`${name} (bytes differ at +0x${Math.max(at, 0).toString(16)})`);
    else matched++;
  }
  return { matched, wrong: out };
}

/**
 * Relocation fields masked, and the instruction bytes the linker may rewrite
 * around them: GOT loads relaxed to `lea`, TLS sequences relaxed to local-exec.
 */
function maskLinkerEdits(
  view: ObjectView,
  bytes: Uint8Array,
  relocs: readonly Rela[],
  base: bigint,
): Uint8Array {
  const out = maskRelocations(view, bytes, relocs, base);
  for (const r of relocs) {
    if (!RELAXED.has(r.type)) continue;
    const at = Number(r.offset - base);
    out.fill(0, Math.max(0, at - 4), Math.min(out.length, at + 16));
  }
  return out;
}

/** x86-64 relocations whose instruction ld may rewrite (psABI relaxations). */
const RELAXED = new Set<number>([
  R_X86_64.GOTPCRELX,
  R_X86_64.REX_GOTPCRELX,
  R_X86_64.GOTPCREL,
  R_X86_64.GOTTPOFF,
  R_X86_64.TLSGD,
  R_X86_64.TLSLD,
  R_X86_64.GOTPC32_TLSDESC,
  R_X86_64.TLSDESC_CALL,
]);

/** A compile of the original tree and the same compile of the patched tree. */
interface Candidate {
  orig: Compile;
  patched: Compile;
  /** The object's path in the tree, as the build wrote it (for messages). */
  path: string;
  /** Order in the original build's log. */
  order: number;
}

/** Where a compile's object is now: the wrapper's copy, else the path it was written to if still there. */
function objectFile(c: Compile): string | undefined {
  if (c.stored !== undefined && existsSync(c.stored)) return c.stored;
  return existsSync(c.object) ? c.object : undefined;
}

/**
 * What makes two compiles of the two trees the same compile: the directory
 * and the arguments with the tree's root taken out, and without the output
 * path (a build may name it after a temporary or move it afterwards).
 */
function compileKey(c: Compile, root: string): string {
  const rel = (a: string) => a.split(root).join("@");
  const args = c.args.filter((a, i) => a !== "-o" && c.args[i - 1] !== "-o").map(rel);
  return [rel(c.cwd), ...args].join("\x1f");
}

/** The source a compile built, as a path in its tree (objects of one source compete for one place in the target). */
function sourceKey(c: Compile, root: string): string {
  return relative(root, c.source === undefined ? c.object : resolve(c.cwd, c.source));
}

function isPic(c: Compile): boolean {
  return c.args.some((a) => a === "-fPIC" || a === "-fpic");
}

/** A shared library (not a PIE): ET_DYN without an interpreter. */
function isSharedLibrary(target: Target): boolean {
  return target.elf.header.type === ET.DYN && !target.elf.programHeaders.some((p) => p.type === PT.INTERP);
}

/** Read an object, or undefined when it is not one (`-o /dev/null`, a truncated file). */
function view(name: string, file: string): ObjectView | undefined {
  try {
    return new ObjectView(name, readFileSync(file));
  } catch {
    return undefined;
  }
}

/**
 * Pair the compiles of the two builds and pick, for each source, the one
 * compile whose object is linked into the target (SPEC §13). Compiles pair
 * by {@link compileKey} and their order among equal keys. A source compiled
 * more than once (PIC for a shared library and not for an archive, as zlib
 * and libtool do) gives several candidates; the one chosen is the one whose
 * functions all equal the target's, most of them first, then (for a shared
 * library target) a PIC compile, then the first compiled. When none
 * matches, the closest one's differences are reported.
 */
function choosePairs(
  compiles: Record<"orig" | "patched", Compile[]>,
  trees: Record<"orig" | "patched", string>,
  target: Target,
): { pairs: ObjectPair[]; wrong: string[]; differing: number } {
  const files = targetFiles(target);
  const patchedByKey = new Map<string, Compile[]>();
  for (const c of compiles.patched) {
    const k = compileKey(c, trees.patched);
    const list = patchedByKey.get(k);
    if (list) list.push(c);
    else patchedByKey.set(k, [c]);
  }
  const bySource = new Map<string, Candidate[]>();
  compiles.orig.forEach((c, order) => {
    const p = patchedByKey.get(compileKey(c, trees.orig))?.shift();
    if (p === undefined) return;
    const k = sourceKey(c, trees.orig);
    const cand = { orig: c, patched: p, path: relative(trees.orig, c.object), order };
    const list = bySource.get(k);
    if (list) list.push(cand);
    else bySource.set(k, [cand]);
  });

  const preferPic = isSharedLibrary(target);
  const pairs: ObjectPair[] = [];
  const wrong: string[] = [];
  let differing = 0;
  for (const candidates of bySource.values()) {
    let best: { c: Candidate; ov: ObjectView; o: string; p: string; fit: Correspondence } | undefined;
    for (const c of candidates) {
      const o = objectFile(c.orig);
      const p = objectFile(c.patched);
      if (o === undefined || p === undefined) continue;
      const ov = view(c.path, o);
      if (ov === undefined) continue;
      if (ov.file !== undefined && files.size > 0 && !files.has(basename(ov.file))) continue;
      const fit = correspondence(ov, target);
      if (best === undefined || better(fit, c, best.fit, best.c, preferPic)) best = { c, ov, o, p, fit };
    }
    if (best === undefined) continue;
    if (best.fit.wrong.length > 0) {
      wrong.push(...best.fit.wrong);
      continue;
    }
    const pv = view(best.c.path, best.p);
    if (pv === undefined || programKey(best.ov) === programKey(pv)) continue;
    differing++;
    pairs.push({ orig: best.o, patched: best.p, source: best.c.path });
  }
  return { pairs, wrong, differing };
}

/** True when candidate `a` fits the target better than `b` (see {@link choosePairs}). */
function better(
  fa: Correspondence,
  a: Candidate,
  fb: Correspondence,
  b: Candidate,
  preferPic: boolean,
): boolean {
  if (fa.wrong.length !== fb.wrong.length) return fa.wrong.length < fb.wrong.length;
  if (fa.matched !== fb.matched) return fa.matched > fb.matched;
  if (preferPic && isPic(a.orig) !== isPic(b.orig)) return isPic(a.orig);
  return a.order < b.order;
}

/**
 * Copy the tree without its objects: a tree built in place would otherwise
 * look up to date to make, and nothing would go through the wrapper.
 */
function copyTree(from: string, to: string): void {
  cpSync(from, to, {
    recursive: true,
    verbatimSymlinks: true,
    filter: (path) => !/\.(o|lo|obj)$/.test(path),
  });
}

/**
 * Build a payload for `target` from the tree `src` and the patches. Errors:
 * a patch that does not apply, or a build that fails, `EINVAL` with the
 * tool's diagnostic; a rebuilt original that is not the target `EINVAL`
 * naming the first functions that differ; whatever `diffObjects` refuses.
 */
export async function makePayload(opts: MakeOptions): Promise<MakeResult> {
  const src = resolve(opts.src);
  if (!existsSync(src) || !statSync(src).isDirectory()) {
    throw new XspliceError("ENOENT", `source tree ${opts.src} is not a directory`);
  }
  if (opts.patches.length === 0) throw new XspliceError("EINVAL", "no --patch given");
  for (const p of opts.patches) {
    if (!existsSync(p)) throw new XspliceError("ENOENT", `patch ${p}: cannot read (ENOENT)`);
  }
  const target = readTarget(opts.target);
  const progress = opts.progress ?? (() => {});
  const tmp = mkdtempSync(join(tmpdir(), "xsplice-make-"));
  try {
    const bin = join(tmp, "bin");
    mkdirSync(bin);
    const wrappers = installWrappers(bin);
    const trees = { orig: join(tmp, "orig"), patched: join(tmp, "patched") };
    progress("copying the tree");
    copyTree(src, trees.orig);
    copyTree(src, trees.patched);
    for (const p of opts.patches) {
      runTool("patch", ["-p1", "-s", "-N", "-d", trees.patched, "-i", resolve(p)], `applying ${p}`);
    }

    const compiles: Record<"orig" | "patched", Compile[]> = { orig: [], patched: [] };
    let total: number | undefined;
    for (const side of ["orig", "patched"] as const) {
      const log = join(tmp, `${side}.log`);
      const store = join(tmp, `${side}.objects`);
      mkdirSync(store);
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        CC: wrappers.cc,
        CXX: wrappers.cxx,
        XSPLICE_CC_LOG: log,
        XSPLICE_OBJ_STORE: store,
        XSPLICE_REAL_CC: opts.cc ?? process.env["CC"] ?? "cc",
        XSPLICE_REAL_CXX: process.env["CXX"] ?? "c++",
        LC_ALL: "C",
      };
      await runBuild(
        `building the ${side === "orig" ? "original" : "patched"} tree`,
        trees[side],
        opts,
        env,
        log,
        total,
      );
      compiles[side] = existsSync(log) ? parseLog(readFileSync(log, "utf8")) : [];
      total = compiles[side].length;
    }
    if (compiles.orig.length === 0) {
      throw new XspliceError("EINVAL", "the build compiled nothing through $CC (does it honour CC?)");
    }

    progress("comparing objects");
    const { pairs, wrong, differing } = choosePairs(compiles, trees, target);
    if (wrong.length > 0) {
      const shown = wrong.slice(0, 3).join(", ");
      throw new XspliceError(
        "EINVAL",
        `the rebuilt original is not target ${opts.target}: ${shown}${wrong.length > 3 ? ` and ${wrong.length - 3} more` : ""}; was the target built with other flags (it needs ${["-ffunction-sections", "-fdata-sections"].join(" ")}) or another compiler?`,
      );
    }
    if (pairs.length === 0) {
      throw new XspliceError(
        "EINVAL",
        `the patches change no object of target ${opts.target}: nothing to patch`,
      );
    }
    progress(`diffing ${pairs.length} object${pairs.length === 1 ? "" : "s"}`);
    const diffOpts: Parameters<typeof diffObjects>[0] = {
      pairs,
      target: opts.target,
      out: opts.out,
      ignoreLineChanges: opts.ignoreLineChanges ?? false,
    };
    if (opts.cc !== undefined) diffOpts.cc = opts.cc;
    if (opts.name !== undefined) diffOpts.name = opts.name;
    const result = diffObjects(diffOpts);
    return { ...result, objects: { built: compiles.orig.length, differing, diffed: pairs.length } };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}
