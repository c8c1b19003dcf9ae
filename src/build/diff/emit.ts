/**
 * Write the payload code of one object pair (SPEC §13) as a relocatable
 * object, ready for `linkPayload` (the second half of `xsplice build`):
 * the changed and new functions, and everything they need that the target
 * does not already have — new variables, strings, read-only data, jump
 * tables — found by following relocations from those functions. Every other
 * reference becomes an undefined symbol named as the target names it
 * (`file.c#name` for a static), so unchanged code and existing variables are
 * the target's own. One `.xsplice.funcs` entry per changed function;
 * `.xsplice.hooks.*` and `.modinfo` of the patched source are carried over.
 */

import { MACHINES } from "../../arch/machines.ts";
import { SHF, SHT, STB, STT } from "../../elf/defs.ts";
import type { Section } from "../../elf/index.ts";
import {
  type WriterRela,
  type WriterSection,
  type WriterSymbol,
  writeRelocatable,
} from "../../elf/writer.ts";
import { XSPLICE_FUNC } from "../../payload/abi.ts";
import type { FuncVerdict, PairVerdict } from "./classify.ts";
import { type Def, isTls, isWritable } from "./object.ts";

/** Flags a copied section keeps: what the loader reads, not the assembler's bookkeeping (groups, retain). */
const KEPT_FLAGS = SHF.WRITE | SHF.ALLOC | SHF.EXECINSTR | SHF.MERGE | SHF.STRINGS | SHF.TLS;

/** Sections of the patched source that go into the payload as they are. */
function isCarried(name: string): boolean {
  return name.startsWith(".xsplice.hooks.") || name === ".modinfo";
}

/** What one pair contributes. */
export interface EmittedPair {
  /** The object's bytes. */
  bytes: Uint8Array;
  /** Bytes of code and data copied (payload size before notes). */
  codeBytes: number;
  /** Hook sections carried, by kind (`preapply`, `load`, ...). */
  hooks: string[];
}

/**
 * `include`: the functions to put in (changed and new); `entries`: the
 * changed ones, which get a `.xsplice.funcs` entry naming the target's function.
 */
export function emitPair(
  v: PairVerdict,
  include: readonly FuncVerdict[],
  entries: readonly FuncVerdict[],
): EmittedPair {
  const { patched, orig, correlation } = v;
  const sections: WriterSection[] = [];
  const symbols: WriterSymbol[] = [];
  const relocations: Record<string, WriterRela[]> = {};
  const copied = new Map<number, number>(); // patched section index → its section symbol
  const queue: Section[] = [];
  const undefinedSyms = new Map<string, number>();
  const kept = new Set<Def>();
  let copiedBytes = 0;

  const copy = (s: Section): number => {
    const seen = copied.get(s.index);
    if (seen !== undefined) return seen;
    const ws: WriterSection = {
      name: s.name,
      type: s.type,
      flags: s.flags & KEPT_FLAGS,
      addralign: Math.max(1, Number(s.addralign)),
      entsize: s.entsize,
    };
    if (s.type === SHT.NOBITS) ws.size = s.size;
    else ws.data = s.data();
    copiedBytes += s.size;
    sections.push(ws);
    symbols.push({ name: "", type: STT.SECTION, bind: STB.LOCAL, section: s.name });
    const index = symbols.length - 1;
    copied.set(s.index, index);
    queue.push(s);
    return index;
  };
  const external = (name: string): number => {
    const seen = undefinedSyms.get(name);
    if (seen !== undefined) return seen;
    symbols.push({ name, section: "undefined" });
    undefinedSyms.set(name, symbols.length - 1);
    return symbols.length - 1;
  };
  /** The name of a patched definition in the target, if it has one there. */
  const targetName = (d: Def): string | undefined => {
    const o = correlation.toOrig.get(d.sym.name);
    const od = o === undefined ? undefined : orig.defs.get(o);
    return od === undefined ? undefined : orig.targetName(od.sym);
  };

  const funcSymbol = new Map<string, number>();
  for (const f of include) {
    for (const d of [f.def, ...f.parts]) {
      kept.add(d);
      copy(d.section);
      symbols.push({
        name: d.sym.name,
        value: d.sym.value,
        size: d.sym.size,
        type: STT.FUNC,
        bind: STB.LOCAL,
        section: d.section.name,
      });
      funcSymbol.set(d.sym.name, symbols.length - 1);
    }
  }
  const hooks: string[] = [];
  for (const s of patched.elf.sections) {
    if (!isCarried(s.name)) continue;
    copy(s);
    if (s.name.startsWith(".xsplice.hooks.")) hooks.push(s.name.slice(".xsplice.hooks.".length));
  }

  while (queue.length > 0) {
    const s = queue.shift()!;
    const out: WriterRela[] = [];
    for (const r of patched.relocations(s.index)) {
      const sym = patched.symbols[r.symbol];
      const ref = patched.referent(r);
      const local = (): WriterRela => {
        // Into a section copied into the payload: section symbol + offset in it.
        const index = patched.elf.section(sym!.section.kind === "section" ? sym!.section.index : 0);
        return { offset: r.offset, type: r.type, symbol: copy(index), addend: sym!.value + r.addend };
      };
      let rela: WriterRela;
      if (ref.kind === "undefined") {
        rela =
          ref.name === ""
            ? { offset: r.offset, type: r.type, addend: r.addend }
            : { offset: r.offset, type: r.type, symbol: external(ref.name), addend: r.addend };
      } else if (ref.kind === "def") {
        const d = ref.def;
        const name = targetName(d);
        const shared = d.code ? !kept.has(d) : isWritable(d) || isTls(d);
        if (shared && name !== undefined) {
          rela = { offset: r.offset, type: r.type, symbol: external(name), addend: ref.addend };
        } else {
          rela = local();
        }
      } else {
        rela = local();
      }
      out.push(rela);
    }
    if (out.length > 0) relocations[s.name] = out;
  }

  // One entry per changed function: new_addr and name are relocations, the rest linkPayload fills.
  if (entries.length > 0) {
    const abs64 = MACHINES[patched.elf.header.machine]!.abs64;
    const names: number[] = [];
    let text = "";
    for (const f of entries) {
      names.push(Buffer.byteLength(text));
      text += `${orig.targetName(f.orig!.sym)}\0`;
    }
    sections.push({ name: ".rodata.xsplice.oldnames", flags: SHF.ALLOC, data: Buffer.from(text) });
    symbols.push({ name: "", type: STT.SECTION, bind: STB.LOCAL, section: ".rodata.xsplice.oldnames" });
    const namesSym = symbols.length - 1;
    sections.push({
      name: ".xsplice.funcs",
      flags: SHF.ALLOC | SHF.WRITE,
      addralign: 8,
      data: new Uint8Array(entries.length * XSPLICE_FUNC.size),
    });
    relocations[".xsplice.funcs"] = entries.flatMap((f, i) => {
      const base = BigInt(i * XSPLICE_FUNC.size);
      return [
        {
          offset: base + BigInt(XSPLICE_FUNC.newAddr),
          type: abs64,
          symbol: funcSymbol.get(f.name)!,
          addend: 0n,
        },
        {
          offset: base + BigInt(XSPLICE_FUNC.name),
          type: abs64,
          symbol: namesSym,
          addend: BigInt(names[i]!),
        },
      ];
    });
  }
  sections.push({ name: ".note.GNU-stack", data: new Uint8Array(0) });
  const bytes = writeRelocatable({ machine: patched.elf.header.machine, sections, symbols, relocations });
  return { bytes, codeBytes: copiedBytes, hooks };
}
