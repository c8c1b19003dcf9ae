/**
 * Relocation-aware comparison (SPEC §13): two definitions are the same when
 * their bytes are the same with every relocation field masked, and their
 * relocations pair up — same offset, same type, pointing at the correlated
 * thing with the same addend. "The same thing" is a key that both objects
 * spell alike: an external by name, a definition by its original name, a
 * string by its text, read-only data by its content.
 */
import type { Rela } from "../../elf/index.ts";
import type { Correlation } from "./correlate.ts";
import { type Def, isWritable, type ObjectView, type Referent } from "./object.ts";

/** Which side of the pair a view is: keys of the patched side go through the correlation. */
export interface Side {
  view: ObjectView;
  /** Maps this side's definition names to the original's; identity for the original. */
  nameOf(name: string): string | undefined;
}

export function origSide(view: ObjectView): Side {
  return { view, nameOf: (n) => n };
}

export function patchedSide(view: ObjectView, c: Correlation): Side {
  return { view, nameOf: (n) => c.toOrig.get(n) };
}

/** How deep read-only data is followed through its own relocations (pointer tables of pointer tables). */
const MAX_DEPTH = 3;

/**
 * A key for what `r` points at that is equal on both sides exactly when the
 * two relocations mean the same thing. Read-only data (constant tables,
 * jump tables, literal pools) is keyed by its content, because the emitter
 * copies it rather than pointing at the target's copy.
 */
export function referentKey(side: Side, r: Rela, depth = 0): string {
  const ref = side.view.referent(r);
  return keyOf(side, ref, depth);
}

function keyOf(side: Side, ref: Referent, depth: number): string {
  switch (ref.kind) {
    case "undefined":
      return `U:${ref.name}${offset(ref.addend)}`;
    case "string":
      return `S:${JSON.stringify(ref.text)}${offset(ref.addend)}`;
    case "anon": {
      const { view } = side;
      const data = ref.section.data();
      return `A:${contentKey(side, data, view.relocations(ref.section.index), 0n, depth)}${offset(ref.addend)}`;
    }
    case "def": {
      const { def } = ref;
      if (!def.code && !isWritable(def)) {
        return `R:${contentKey(side, side.view.bytesOf(def), relocsOf(side.view, def), def.sym.value, depth)}${offset(ref.addend)}`;
      }
      const name = side.nameOf(def.sym.name);
      // A definition with no original is new: equal to nothing of the original.
      return name === undefined ? `N:${def.sym.name}${offset(ref.addend)}` : `D:${name}${offset(ref.addend)}`;
    }
  }
}

function offset(a: bigint): string {
  return a === 0n ? "" : a > 0n ? `+${a}` : `${a}`;
}

function relocsOf(view: ObjectView, def: Def): Rela[] {
  return view.relocationsIn(def.section, def.sym.value, def.sym.size || 1n);
}

/** Hex of `bytes` with relocation fields masked, then each relocation's offset, type and referent. */
function contentKey(
  side: Side,
  bytes: Uint8Array,
  relocs: readonly Rela[],
  base: bigint,
  depth: number,
): string {
  if (depth >= MAX_DEPTH) return `#${bytes.length}`;
  const masked = maskRelocations(side.view, bytes, relocs, base);
  const parts = relocs.map((r) => `${r.offset - base}:${r.type}:${referentKey(side, r, depth + 1)}`);
  return `${Buffer.from(masked).toString("hex")}[${parts.join(",")}]`;
}

/** A copy of `bytes` (at `base` in its section) with every relocation field zeroed. */
export function maskRelocations(
  view: ObjectView,
  bytes: Uint8Array,
  relocs: readonly Rela[],
  base: bigint,
): Uint8Array {
  const out = Uint8Array.from(bytes);
  for (const r of relocs) {
    const at = Number(r.offset - base);
    out.fill(0, Math.max(0, at), Math.min(out.length, at + view.fieldSize(r.type)));
  }
  return out;
}

/** How two definitions differ, or undefined when they are the same. */
export interface Difference {
  /** One line for people: what differs first. */
  reason: string;
  /** True when the bytes (masked) differ; false when only relocations do. */
  bytes: boolean;
  /** Offsets (from the definition's start) of bytes that differ, when sizes are equal. */
  at: number[];
  /** The first relocation that differs, if any. */
  relocs?: string;
}

/** Compare a definition of the original with its correlated one of the patched object. */
export function compareDefs(o: Side, od: Def, p: Side, pd: Def): Difference | undefined {
  if (od.sym.size !== pd.sym.size) {
    return { reason: `size ${od.sym.size} -> ${pd.sym.size}`, bytes: true, at: [] };
  }
  const or = relocsOf(o.view, od);
  const pr = relocsOf(p.view, pd);
  const ob = maskRelocations(o.view, o.view.bytesOf(od), or, od.sym.value);
  const pb = maskRelocations(p.view, p.view.bytesOf(pd), pr, pd.sym.value);
  const at: number[] = [];
  for (let i = 0; i < ob.length; i++) if (ob[i] !== pb[i]) at.push(i);
  const relocDiff = compareRelocations(o, or, od.sym.value, p, pr, pd.sym.value);
  if (at.length > 0) {
    const d: Difference = { reason: `code differs at +0x${at[0]!.toString(16)}`, bytes: true, at };
    if (relocDiff !== undefined) d.relocs = relocDiff;
    return d;
  }
  if (relocDiff !== undefined) return { reason: relocDiff, bytes: false, at, relocs: relocDiff };
  return undefined;
}

function compareRelocations(
  o: Side,
  or: readonly Rela[],
  obase: bigint,
  p: Side,
  pr: readonly Rela[],
  pbase: bigint,
): string | undefined {
  if (or.length !== pr.length) return `relocations ${or.length} -> ${pr.length}`;
  for (let i = 0; i < or.length; i++) {
    const a = or[i]!;
    const b = pr[i]!;
    const at = `+0x${(b.offset - pbase).toString(16)}`;
    if (a.offset - obase !== b.offset - pbase || a.type !== b.type) return `relocation at ${at} differs`;
    const ka = referentKey(o, a);
    const kb = referentKey(p, b);
    if (ka !== kb) return `reference at ${at} now to ${describe(p, b)}`;
  }
  return undefined;
}

/** A referent as people read it. */
function describe(side: Side, r: Rela): string {
  const ref = side.view.referent(r);
  switch (ref.kind) {
    case "undefined":
      return ref.name;
    case "string":
      return JSON.stringify(ref.text.length > 40 ? `${ref.text.slice(0, 40)}...` : ref.text);
    case "anon":
      return ref.section.name;
    case "def":
      return ref.def.sym.name;
  }
}
