/**
 * Name lookup in a target file's symbol table for `xsplice build`, by the one
 * SPEC §2 rule the loader uses too (`src/payload/target-symbols.ts`).
 */
import { STB, STT } from "../elf/defs.ts";
import type { ElfSymbol } from "../elf/index.ts";
import { NameIndex, type Resolution } from "../payload/target-symbols.ts";

/** The outcome of a lookup: found, absent, or a bare static name several files define. */
export type Lookup = Resolution<ElfSymbol>;

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

/** An index over one target file's symbol table, by the SPEC §2 rule (`NameIndex`). */
export class TargetSymbols {
  private readonly index = new NameIndex<ElfSymbol>();

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
      if (s.bind === STB.LOCAL) this.index.addLocal(s.name, s, file);
      else this.index.addGlobal(s.name, s, s.bind === STB.WEAK);
    }
  }

  /** Look `name` up: "file.c#sym" among that file's statics, else a global, else a unique static. */
  lookup(name: string): Lookup {
    return this.index.resolve(name);
  }

  /** The files of the statics `name` is ambiguous between. */
  filesOf(name: string): string[] {
    return this.index.filesOf(name);
  }
}
