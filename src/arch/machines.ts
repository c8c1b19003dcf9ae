/**
 * What a payload reader must know of each machine xsplice knows, whether or
 * not it can patch processes of it yet (`inspect` reads an arm64 payload on
 * x86-64): its name, the size of a trampoline (SPEC §2: the smallest
 * `old_size` that takes one) and the 64-bit absolute relocation that fills
 * pointer fields. One row per machine; the machine's `Arch` takes its
 * trampoline size from here.
 */
import { EM, R_AARCH64, R_X86_64 } from "../elf/defs.ts";
import { TRAMPOLINE_SIZE } from "./x86_64/encode.ts";

/** Facts of one machine. */
export interface MachineFacts {
  name: string;
  /** Bytes of a jump to the replacement (x86-64 `e9` rel32: 5; arm64 `B`: 4). */
  trampolineSize: number;
  /** The relocation type of a 64-bit absolute address. */
  abs64: number;
}

/** By ELF `e_machine`. */
export const MACHINES: Readonly<Record<number, MachineFacts>> = {
  [EM.X86_64]: { name: "x86-64", trampolineSize: TRAMPOLINE_SIZE, abs64: R_X86_64["64"] },
  [EM.AARCH64]: { name: "arm64", trampolineSize: 4, abs64: R_AARCH64.ABS64 },
};
