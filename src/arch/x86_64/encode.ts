/**
 * x86-64 instruction encodings for patching (SPEC §3): the trampoline, NOP
 * fill, `endbr64` detection and absolute stubs. Byte layouts follow the Intel
 * SDM (JMP rel32, `FF /4` JMP r/m64, the recommended multi-byte NOPs).
 */
import { XspliceError } from "../../errors.ts";
import { hex } from "../../hex.ts";

/** Length of `e9 rel32`. */
export const TRAMPOLINE_SIZE = 5;
/** Length of `ff 25 00000000` followed by the 8-byte target. */
export const STUB_SIZE = 14;
/** A rel32 reaches ±2 GiB from the end of its instruction. */
export const BRANCH_REACH = 1n << 31n;

const ENDBR64 = [0xf3, 0x0f, 0x1e, 0xfa] as const;

/**
 * The Intel SDM's recommended NOP of each length 1–9 (Vol. 2B, NOP, table
 * "Recommended Multi-Byte Sequence of NOP Instruction").
 */
const NOPS: readonly (readonly number[])[] = [
  [],
  [0x90],
  [0x66, 0x90],
  [0x0f, 0x1f, 0x00],
  [0x0f, 0x1f, 0x40, 0x00],
  [0x0f, 0x1f, 0x44, 0x00, 0x00],
  [0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
  [0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
  [0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
  [0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
];

/** `e9 rel32` at `at` jumping to `to`; `EOVERFLOW` when the distance does not fit rel32. */
export function trampoline(at: bigint, to: bigint): Uint8Array {
  const rel = to - (at + BigInt(TRAMPOLINE_SIZE));
  if (rel < -BRANCH_REACH || rel >= BRANCH_REACH) {
    throw new XspliceError(
      "EOVERFLOW",
      `jump from ${hex(at)} to ${hex(to)} is out of reach (displacement ${hex(rel)}, limit ±2 GiB)`,
      { address: at },
    );
  }
  const out = new Uint8Array(TRAMPOLINE_SIZE);
  out[0] = 0xe9;
  new DataView(out.buffer).setInt32(1, Number(rel), true);
  return out;
}

/**
 * `n` bytes of NOPs: as many 9-byte NOPs as fit, then one shorter NOP, so a
 * patched range decodes as few whole instructions (SPEC §3 NOP entries).
 */
export function nops(n: number): Uint8Array {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new XspliceError("EINVAL", `NOP length ${n} is not a non-negative integer`);
  }
  const out = new Uint8Array(n);
  let at = 0;
  while (at < n) {
    const len = Math.min(9, n - at);
    out.set(NOPS[len]!, at);
    at += len;
  }
  return out;
}

/** True when `code` starts with `endbr64` (CET indirect-branch target marker). */
export function startsWithEndbr64(code: Uint8Array): boolean {
  return ENDBR64.every((b, i) => code[i] === b);
}

/**
 * Bytes to step over before the trampoline: an `endbr64` must stay, since
 * indirect calls land on it when IBT is enforced (SPEC §2 "functions").
 */
export function patchOffset(code: Uint8Array): number {
  return startsWithEndbr64(code) ? ENDBR64.length : 0;
}

/** Smallest `old_size` that holds a trampoline: 5, or 9 after `endbr64` (SPEC §2). */
export function minPatchSize(code: Uint8Array): number {
  return patchOffset(code) + TRAMPOLINE_SIZE;
}

/** `jmp *0(%rip)` followed by the 8-byte target: reaches any address, clobbers no register. */
export function absoluteStub(to: bigint): Uint8Array {
  const out = new Uint8Array(STUB_SIZE);
  out.set([0xff, 0x25, 0, 0, 0, 0], 0);
  new DataView(out.buffer).setBigUint64(6, BigInt.asUintN(64, to), true);
  return out;
}
