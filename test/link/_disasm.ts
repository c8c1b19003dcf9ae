/**
 * objdump as the decoding oracle for the arch and linker tests: disassemble
 * raw bytes placed at an address, or read an ELF's relocations and symbols.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUILD_DIR, tool } from "../helpers/cc.ts";

/** One decoded instruction. */
export interface Insn {
  address: bigint;
  bytes: number[];
  mnemonic: string;
  operands: string;
}

let seq = 0;

/** Decode `code` as x86-64 placed at `vma`, with objdump (`-D -b binary -mi386:x86-64 --adjust-vma`). */
export function disassemble(code: Uint8Array, vma: bigint): Insn[] {
  mkdirSync(BUILD_DIR, { recursive: true });
  const file = join(BUILD_DIR, `disasm-${process.pid}-${seq++}.bin`);
  writeFileSync(file, code);
  const out = tool("objdump", [
    "-D",
    "-w",
    "--insn-width=16",
    "-b",
    "binary",
    "-mi386:x86-64",
    `--adjust-vma=0x${vma.toString(16)}`,
    file,
  ]);
  const insns: Insn[] = [];
  for (const line of out.split("\n")) {
    const m = /^\s*([0-9a-f]+):\t((?:[0-9a-f]{2} )+)\s*\t?(\S*)\s*(.*)$/.exec(line);
    if (!m) continue;
    insns.push({
      address: BigInt(`0x${m[1]}`),
      bytes: m[2]!
        .trim()
        .split(" ")
        .map((b) => Number.parseInt(b, 16)),
      mnemonic: m[3] ?? "",
      operands: (m[4] ?? "").trim(),
    });
  }
  return insns;
}

/** The absolute target of a decoded direct `jmp`/`call`/`jcc` (objdump prints it as `0x...`). */
export function branchTarget(insn: Insn): bigint {
  const m = /^0x([0-9a-f]+)/.exec(insn.operands);
  if (!m) throw new Error(`not a direct branch: ${insn.mnemonic} ${insn.operands}`);
  return BigInt(`0x${m[1]}`);
}

/** The address a RIP-relative operand refers to (objdump's `# 0x...` comment). */
export function ripTarget(insn: Insn): bigint {
  const m = /#\s*0x([0-9a-f]+)/.exec(insn.operands);
  if (!m) throw new Error(`no RIP-relative operand: ${insn.mnemonic} ${insn.operands}`);
  return BigInt(`0x${m[1]}`);
}

/** A relocation as `objdump -dr` lists it inside a section's disassembly. */
export interface ObjdumpReloc {
  section: string;
  offset: number;
  type: string;
  symbol: string;
  /** The instruction the field belongs to. */
  mnemonic: string;
}

/** Every relocation of an object's code sections, paired with the instruction holding it (`objdump -drw`). */
export function codeRelocations(objPath: string): ObjdumpReloc[] {
  const out = tool("objdump", ["-drw", objPath]);
  const relocs: ObjdumpReloc[] = [];
  let section = "";
  let mnemonic = "";
  for (const line of out.split("\n")) {
    const s = /^Disassembly of section (\S+):/.exec(line);
    if (s) section = s[1]!;
    const i = /^\s*[0-9a-f]+:\t(?:[0-9a-f]{2} )+\s*\t(\S+)/.exec(line);
    if (i) mnemonic = i[1]!;
    // With -w objdump appends the relocation to the instruction's line after a tab.
    const r = /(?:^|\t)\s*([0-9a-f]+): (R_X86_64_\S+)\s+(\S+)/.exec(line);
    if (r) relocs.push({ section, offset: Number.parseInt(r[1]!, 16), type: r[2]!, symbol: r[3]!, mnemonic });
  }
  return relocs;
}
