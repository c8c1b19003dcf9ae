/**
 * Name lookup in a target object's symbol table, the way SPEC §2 resolves a
 * payload's names against it: globals by name; statics as "file.c#name"
 * (the locals that follow the STT_FILE symbol `file.c`, matched by full name
 * or base name); a bare static name only when exactly one file defines it.
 */
import { basename } from "node:path";
import { STB, STT } from "../elf/defs.ts";
import type { ElfSymbol } from "../elf/index.ts";

/** A symbol of the target with the source file it came from, for statics. */
export interface FoundSymbol {
  symbol: ElfSymbol;
  /** The STT_FILE symbol before it (locals only). */
  file?: string;
}

/** The outcome of a lookup: found, absent, or a bare static name several files define. */
export type Lookup =
  | { kind: "found"; symbol: ElfSymbol }
  | { kind: "missing" }
  | { kind: "ambiguous"; files: string[] };

/**
 * Symbols a name may resolve to: defined code and data. Thread-locals are left
 * out because their value is a TLS offset, not an address the loader could
 * rebase; IFUNCs because their value is the resolver, not the function;
 * sections and files have no name a payload refers to.
 */
function resolvable(s: ElfSymbol): boolean {
  return (
    s.section.kind !== "undefined" &&
    s.section.kind !== "common" &&
    s.name !== "" &&
    (s.type === STT.FUNC || s.type === STT.OBJECT || s.type === STT.NOTYPE)
  );
}

/** An index over one target's symbol table. */
export class TargetSymbols {
  private readonly globals = new Map<string, ElfSymbol>();
  private readonly locals = new Map<string, FoundSymbol[]>();

  /**
   * `symbols` in table order: ld keeps each file's locals right after that
   * file's STT_FILE symbol, which is how a static learns its file.
   */
  constructor(symbols: readonly ElfSymbol[]) {
    let file: string | undefined;
    for (const s of symbols) {
      if (s.type === STT.FILE) {
        file = s.name === "" ? undefined : s.name;
        continue;
      }
      if (!resolvable(s)) continue;
      if (s.bind === STB.LOCAL) {
        const entry: FoundSymbol = file === undefined ? { symbol: s } : { symbol: s, file };
        const list = this.locals.get(s.name);
        if (list) list.push(entry);
        else this.locals.set(s.name, [entry]);
      } else {
        // A strong definition wins over a weak one, as the linker chose.
        const seen = this.globals.get(s.name);
        if (!seen || (seen.bind === STB.WEAK && s.bind !== STB.WEAK)) this.globals.set(s.name, s);
      }
    }
  }

  /** Look `name` up: "file.c#sym" among that file's statics, else a global, else a unique static. */
  lookup(name: string): Lookup {
    const hash = name.lastIndexOf("#");
    if (hash > 0) {
      const file = name.slice(0, hash);
      const sym = name.slice(hash + 1);
      const hit = (this.locals.get(sym) ?? []).find(
        (s) => s.file !== undefined && (s.file === file || basename(s.file) === file),
      );
      return hit ? { kind: "found", symbol: hit.symbol } : { kind: "missing" };
    }
    const global = this.globals.get(name);
    if (global) return { kind: "found", symbol: global };
    const statics = this.locals.get(name) ?? [];
    if (statics.length === 1) return { kind: "found", symbol: statics[0]!.symbol };
    if (statics.length > 1) return { kind: "ambiguous", files: statics.map((s) => s.file ?? "?") };
    return { kind: "missing" };
  }
}
