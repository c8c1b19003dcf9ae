/**
 * The verdict on every function and variable of one object pair (SPEC §13):
 * unchanged, changed (and why), new, or refused (and why). Cold parts of a
 * function (`f.cold`) are judged with it: they are jumped into from the middle
 * of `f`, so the two are one function that the compiler split in two places.
 */
import { SHF } from "../../elf/defs.ts";
import { compareDefs, type Difference, origSide, patchedSide, referentKey, type Side } from "./compare.ts";
import { type Correlation, correlate } from "./correlate.ts";
import { type Def, isTls, isWritable, type ObjectView } from "./object.ts";

/** One function's verdict. */
export interface FuncVerdict {
  /** Name in the patched object. */
  name: string;
  /** Name in the original object (and so in the target), when it has one. */
  origName?: string;
  status: "unchanged" | "changed" | "new";
  reason: string;
  /** True when the only difference is embedded line numbers (`__LINE__`, `assert`). */
  lineOnly: boolean;
  /** The patched definition. */
  def: Def;
  /** The original definition, for changed and unchanged functions. */
  orig?: Def;
  /** Cold parts (`f.cold`) that travel with this function. */
  parts: Def[];
}

/** A refusal: the symbol and why (SPEC §13: EOPNOTSUPP, nothing written). */
export interface Refusal {
  name: string;
  reason: string;
}

/** Everything classify learned about one object pair. */
export interface PairVerdict {
  orig: ObjectView;
  patched: ObjectView;
  correlation: Correlation;
  funcs: FuncVerdict[];
  refused: Refusal[];
}

/** Largest value taken for a line number when telling a `__LINE__` change from a real one. */
const MAX_LINE = 1_000_000;

/**
 * True when the 4-byte immediate at `s` is the operand of a `mov $imm32`,
 * the form in which gcc passes a line number (`assert`'s `__assert_fail(...,
 * __LINE__, ...)`, a `__LINE__` in an argument or a store): `B8+r imm32`, or
 * `C7 /0` with up to a SIB byte and a 32-bit displacement in between.
 */
function isMovImmediate(code: Uint8Array, s: number): boolean {
  const op = code[s - 1];
  if (op !== undefined && op >= 0xb8 && op <= 0xbf) return true;
  for (let back = 2; back <= 7; back++) if (code[s - back] === 0xc7) return true;
  return false;
}

/**
 * True when every differing byte lies in a 4-byte little-endian `mov`
 * immediate that holds a plausible line number on both sides (what
 * `__LINE__` and `assert` embed). Conservative: anything else is a real
 * change. It cannot tell a changed `mov $constant` from a moved line, which
 * is why a line-only verdict is reported and left out only on request.
 */
export function onlyLineNumbers(ob: Uint8Array, pb: Uint8Array, at: readonly number[]): boolean {
  if (ob.length !== pb.length || at.length === 0) return false;
  const u32 = (b: Uint8Array, i: number) =>
    (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
  let i = 0;
  while (i < at.length) {
    const first = at[i]!;
    let last = first;
    while (i + 1 < at.length && at[i + 1]! - first < 4) last = at[++i]!;
    i++;
    let ok = false;
    for (let s = Math.max(0, last - 3); s <= first && s + 4 <= ob.length; s++) {
      const a = u32(ob, s);
      const b = u32(pb, s);
      if (
        a > 0 &&
        b > 0 &&
        a < MAX_LINE &&
        b < MAX_LINE &&
        a !== b &&
        isMovImmediate(ob, s) &&
        isMovImmediate(pb, s)
      ) {
        ok = true;
        break;
      }
    }
    if (!ok) return false;
  }
  return true;
}

function isCold(name: string): boolean {
  return /\.cold(?:\.\d+)?$/.test(name);
}

/** Sections whose entries run once at start or exit: a change there comes too late. */
function isCtorSection(name: string): boolean {
  return /^\.(init_array|fini_array|ctors|dtors|preinit_array)(\.|$)/.test(name);
}

/** Keys of what every constructor/destructor table of an object points at. */
function ctorTargets(side: Side): Map<string, string> {
  const out = new Map<string, string>();
  for (const s of side.view.elf.sections) {
    if (!isCtorSection(s.name)) continue;
    for (const r of side.view.relocations(s.index)) {
      const ref = side.view.referent(r);
      const name = ref.kind === "def" ? ref.def.sym.name : ref.kind === "undefined" ? ref.name : s.name;
      out.set(referentKey(side, r), name);
    }
  }
  return out;
}

/** Classify one pair of objects, built from the original and the patched source. */
export function classify(orig: ObjectView, patched: ObjectView): PairVerdict {
  const correlation = correlate(orig, patched);
  const o = origSide(orig);
  const p = patchedSide(patched, correlation);
  const refused: Refusal[] = [];
  const funcs: FuncVerdict[] = [];
  const colds = new Map<string, Def[]>();
  for (const [name, d] of patched.defs) {
    if (!d.code || !isCold(name)) continue;
    const parent = name.replace(/\.cold(?:\.\d+)?$/, "");
    const list = colds.get(parent);
    if (list) list.push(d);
    else colds.set(parent, [d]);
  }

  for (const [name, pd] of patched.defs) {
    if (!pd.code || isCold(name) || patched.aliases.has(pd)) continue;
    const parts = colds.get(name) ?? [];
    const origName = correlation.toOrig.get(name);
    const od = origName === undefined ? undefined : orig.defs.get(origName);
    if (od === undefined) {
      funcs.push({ name, status: "new", reason: "new function", lineOnly: false, def: pd, parts });
      continue;
    }
    let diff: Difference | undefined = compareDefs(o, od, p, pd);
    let lineOnly = false;
    if (diff?.bytes && diff.at.length > 0) {
      // Relocations must still agree for a line-only verdict.
      lineOnly = diff.relocs === undefined && onlyLineNumbers(orig.bytesOf(od), patched.bytesOf(pd), diff.at);
    }
    for (const part of parts) {
      const partOrigName = correlation.toOrig.get(part.sym.name);
      const partOrig = partOrigName === undefined ? undefined : orig.defs.get(partOrigName);
      const partDiff: Difference | undefined =
        partOrig === undefined
          ? { reason: `new cold part ${part.sym.name}`, bytes: true, at: [] }
          : compareDefs(o, partOrig, p, part);
      if (partDiff !== undefined && diff === undefined)
        diff = { ...partDiff, reason: `${part.sym.name}: ${partDiff.reason}` };
      if (partDiff !== undefined) lineOnly = false;
    }
    const verdict: FuncVerdict = {
      name,
      origName: od.sym.name,
      status: diff === undefined ? "unchanged" : "changed",
      reason: diff === undefined ? "" : lineOnly ? "line numbers only" : diff.reason,
      lineOnly,
      def: pd,
      orig: od,
      parts,
    };
    funcs.push(verdict);
  }

  // Variables: an existing one keeps its place in the target, so its size and
  // initial value must not change; a new thread-local has no TLS block to live in.
  for (const [name, pd] of patched.defs) {
    if (pd.code) continue;
    const origName = correlation.toOrig.get(name);
    const od = origName === undefined ? undefined : orig.defs.get(origName);
    if (od === undefined) {
      if (isTls(pd))
        refused.push({ name, reason: "new thread-local variable (the target has no room for it)" });
      continue;
    }
    if (!isWritable(pd) && !isTls(pd)) continue; // read-only data is copied, never shared
    if (od.sym.size !== pd.sym.size) {
      refused.push({
        name,
        reason: `size of existing variable changed (${od.sym.size} -> ${pd.sym.size} bytes)`,
      });
      continue;
    }
    const diff = compareDefs(o, od, p, pd);
    if (diff !== undefined) {
      const relro = pd.section.name.startsWith(".data.rel.ro")
        ? " (.data.rel.ro: existing code points at it)"
        : "";
      refused.push({ name, reason: `initialised data changed${relro}: ${diff.reason}` });
    } else if ((od.section.flags & SHF.TLS) !== (pd.section.flags & SHF.TLS)) {
      refused.push({ name, reason: "thread-local storage class changed" });
    }
  }

  // Constructors and destructors ran when the target started (or will run at exit from the old table).
  const oc = ctorTargets(o);
  const pc = ctorTargets(p);
  for (const [key, name] of pc) {
    if (!oc.has(key)) refused.push({ name, reason: "new constructor/destructor entry (it would never run)" });
  }
  for (const f of funcs) {
    if (f.status !== "changed" || f.orig === undefined) continue;
    const isCtor = [...oc.values()].includes(f.orig.sym.name);
    if (isCtor) refused.push({ name: f.name, reason: "changed constructor/destructor (it already ran)" });
  }
  return { orig, patched, correlation, funcs, refused };
}
