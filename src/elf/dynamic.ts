/**
 * The dynamic section (`SHT_DYNAMIC`): the one fact xsplice needs from it is
 * `DT_SONAME`, the name a shared library is found by at start-up and
 * `dlopen` (the agent looks for a library target no process maps yet by it).
 */
import { sectionError } from "./_check.ts";
import { SHT } from "./defs.ts";
import type { ElfFile } from "./file.ts";

/** `d_tag` values read here. */
export const DT = { NULL: 0n, SONAME: 14n } as const;

/** `Elf64_Dyn`: `d_tag`, `d_val`. */
const DYN_SIZE = 16;

/** The `DT_SONAME` of a 64-bit ELF object, or undefined when it has none (or no dynamic section). */
export function sonameOf(elf: ElfFile): string | undefined {
  const dyn = elf.sectionsByType(SHT.DYNAMIC)[0];
  if (!dyn) return undefined;
  if (dyn.size % DYN_SIZE !== 0)
    throw sectionError("EINVAL", dyn.offset, dyn, "size is not a multiple of 16 (Elf64_Dyn)", dyn.size);
  const data = dyn.data();
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let at = 0; at + DYN_SIZE <= data.length; at += DYN_SIZE) {
    const tag = dv.getBigInt64(at, true);
    if (tag === DT.NULL) break;
    if (tag !== DT.SONAME) continue;
    const strtab = elf.section(dyn.link);
    if (strtab.type !== SHT.STRTAB)
      throw sectionError("EINVAL", dyn.headerOffset, dyn, "sh_link is not a string table", dyn.link);
    const off = dv.getBigUint64(at + 8, true);
    if (off >= BigInt(strtab.size))
      throw sectionError("EINVAL", dyn.offset + at + 8, dyn, "DT_SONAME outside its string table", off);
    return elf.stringTable(strtab).get(Number(off), "DT_SONAME", dyn.offset + at + 8);
  }
  return undefined;
}
