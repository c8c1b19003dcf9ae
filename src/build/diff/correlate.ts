/**
 * Which definition of the patched object is which of the original (SPEC §13).
 * Names first; then what the compiler renumbers between two builds — static
 * locals (`count.2` ↔ `count.1`) and clones (`f.constprop.0`, `f.isra.1`,
 * `f.part.0`, `f.cold`) — matched by their name with the numbers taken out,
 * in order, preferring a candidate with the same bytes (two `__func__.N` of
 * different functions share a base name but not their text).
 */
import type { Def, ObjectView } from "./object.ts";

/** A name with gcc's numeric suffixes replaced by `#`: `count.2` → `count.#`, `f.constprop.0.isra.1` → `f.constprop.#.isra.#`. */
export function shapeOf(name: string): string {
  return name.replace(/\.\d+(?=\.|$)/g, ".#");
}

/** True when the name has a suffix gcc adds (a renumbered static local or a clone). */
export function hasCompilerSuffix(name: string): boolean {
  return shapeOf(name) !== name || name.endsWith(".cold");
}

/** The function a clone or cold part belongs to: `f.part.0.cold` → `f`. */
export function parentOf(name: string): string {
  const cut = name.search(/\.(?:cold|part|isra|constprop|\d)/);
  return cut > 0 ? name.slice(0, cut) : name;
}

/** The result: for each patched definition its original, or none (new). */
export interface Correlation {
  /** patched name → original name. */
  toOrig: Map<string, string>;
  /** original name → patched name. */
  toPatched: Map<string, string>;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Correlate the definitions of `patched` with those of `orig`. */
export function correlate(orig: ObjectView, patched: ObjectView): Correlation {
  const toOrig = new Map<string, string>();
  const toPatched = new Map<string, string>();
  const pair = (p: Def, o: Def) => {
    toOrig.set(p.sym.name, o.sym.name);
    toPatched.set(o.sym.name, p.sym.name);
  };
  // 1. Same name, same kind (code or data): the usual case.
  for (const [name, p] of patched.defs) {
    const o = orig.defs.get(name);
    if (o !== undefined && o.code === p.code) pair(p, o);
  }
  // 2. Renumbered names, grouped by shape, matched in symbol-table order; among
  //    several candidates a byte-identical one wins.
  const unmatched = (view: ObjectView, done: Map<string, string>) => {
    const groups = new Map<string, Def[]>();
    for (const [name, d] of view.defs) {
      if (done.has(name) || !hasCompilerSuffix(name)) continue;
      const key = `${d.code ? "f" : "d"}:${shapeOf(name)}`;
      const g = groups.get(key);
      if (g) g.push(d);
      else groups.set(key, [d]);
    }
    return groups;
  };
  const origGroups = unmatched(orig, toPatched);
  for (const [key, ps] of unmatched(patched, toOrig)) {
    const os = origGroups.get(key);
    if (!os) continue;
    for (const p of ps) {
      if (os.length === 0) break;
      const pb = patched.bytesOf(p);
      let at = os.findIndex((o) => sameBytes(orig.bytesOf(o), pb));
      if (at < 0) at = 0;
      pair(p, os[at]!);
      os.splice(at, 1);
    }
  }
  return { toOrig, toPatched };
}
