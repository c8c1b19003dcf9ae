/**
 * The per-architecture interface (architecture.md, STYLE §4): everything the
 * loader, linker and patcher need to know about a machine's encodings. Only
 * `archFor` in `index.ts` chooses an implementation; `src/core` sees this shape.
 */

/**
 * What a relocation computes, so the linker knows which inputs it needs and
 * what it may do when a value is out of reach (SPEC §2 "relocations"):
 * - `none`: nothing is written.
 * - `absolute`: S + A.
 * - `pc`: S + A − P; out of reach → a stub (branch) or a GOT slot (address load), if the
 *   instruction allows.
 * - `plt`: S + A − P to a function; out of reach → a stub.
 * - `got`: slot + A − P, where the slot holds S.
 * - `gotbase`: relative to the GOT area itself (GOTPC32/64, GOTOFF64).
 * - `tpoff`: the symbol's offset from the thread pointer + A (static TLS).
 * - `gottpoff`: slot + A − P, where the slot holds the thread-pointer offset.
 * - `tlsgd`: a general-dynamic TLS sequence, rewritten to local-exec (needs the offset).
 * - `size`: Z + A.
 */
export type RelocKind =
  | "none"
  | "absolute"
  | "pc"
  | "plt"
  | "got"
  | "gotbase"
  | "tpoff"
  | "gottpoff"
  | "tlsgd"
  | "size";

/** How a computed value must fit its field: as a signed or unsigned integer of the field's width, or anyhow. */
export type RangeCheck = "signed" | "unsigned" | "none";

/** The psABI inputs of one relocation; the linker fills in what the row's kind needs, 0n elsewhere. */
export interface RelocValues {
  /** S: the symbol's final address. */
  symbol: bigint;
  /** A: the addend. */
  addend: bigint;
  /** P: the final address of the field being relocated. */
  place: bigint;
  /** G + GOT: the address of this relocation's GOT slot (`got`, `gottpoff`). */
  slot: bigint;
  /** GOT: the address of the payload's GOT area (`gotbase`). */
  gotBase: bigint;
  /** Z: the symbol's size (`size`). */
  size: bigint;
  /** The symbol's offset from the thread pointer (`tpoff`, `tlsgd`, and the slot value for `gottpoff`). */
  tpoff: bigint;
}

/** One row of an architecture's relocation table (STYLE §5). */
export interface RelocInfo {
  /** The ELF relocation type number. */
  type: number;
  /** The psABI name, e.g. `R_X86_64_PC32`. */
  name: string;
  /** Width of the field in bytes (0 for NONE). */
  size: number;
  /** True when the value is relative to the field's own address. */
  pcRelative: boolean;
  /** How the value must fit the field. */
  range: RangeCheck;
  /** What the relocation computes (see {@link RelocKind}). */
  kind: RelocKind;
  /**
   * The relocation at `field + consumes` is part of this one's instruction sequence (a TLS
   * general-dynamic call to `__tls_get_addr`) and must not be applied on its own.
   */
  consumes?: number;
  /** The value this relocation stores, from the psABI formula. */
  compute(v: RelocValues): bigint;
  /**
   * Compute, range-check and store the value at `field` of `code` (the bytes of the section
   * holding the field). Throws `EOVERFLOW` naming the symbol, type and value when it does not fit;
   * `EINVAL` or `EOPNOTSUPP` when an instruction sequence it must rewrite is not the expected one.
   */
  apply(code: Uint8Array, field: number, v: RelocValues, symbol: string): void;
}

/** What an out-of-reach PC-relative field belongs to, which decides how it can be rerouted. */
export type PcFieldUse =
  /** A call or (conditional) jump: can go through a stub. */
  | "branch"
  /** An address computation (`lea`): can load the address from a GOT slot instead. */
  | "address"
  /** Anything else (a load or store of the data itself): cannot be rerouted. */
  | "other";

/** Per-architecture code (STYLE §4). */
export interface Arch {
  /** `e_machine`. */
  machine: number;
  /** Short name, e.g. `x86_64`. */
  name: string;
  /** Bytes of the jump written over an old function (SPEC §3); throws `EOVERFLOW` when `to` is out of reach of `at`. */
  trampoline(at: bigint, to: bigint): Uint8Array;
  /** Length of {@link Arch.trampoline}'s output. */
  trampolineSize: number;
  /** `n` bytes of the machine's recommended NOP instructions (SPEC §3 NOP entries). */
  nops(n: number): Uint8Array;
  /** Bytes at the start of a function to step over before the trampoline (SPEC §2: `endbr64`). */
  patchOffset(code: Uint8Array): number;
  /** Smallest `old_size` that can take a trampoline, given the function's first bytes (SPEC §2). */
  minPatchSize(code: Uint8Array): number;
  /** How far a direct branch or PC-relative reference reaches, either way, in bytes. */
  branchReach: bigint;
  /** The relocation table row for `type`, or undefined when the type is not supported. */
  relocation(type: number): RelocInfo | undefined;
  /** The psABI name of any relocation type, supported or not (for messages); never throws. */
  relocationName(type: number): string;
  /** A jump to an absolute address, reaching anywhere (used for stubs). */
  absoluteStub(to: bigint): Uint8Array;
  /** Length of {@link Arch.absoluteStub}'s output. */
  stubSize: number;
  /** What the instruction owning the PC-relative `field` in `code` does with it. */
  pcFieldUse(code: Uint8Array, field: number): PcFieldUse;
  /**
   * Rewrite the address computation owning `field` (a {@link PcFieldUse} `address`) so that it
   * loads the address from a slot at the same displacement instead.
   */
  loadFromSlot(code: Uint8Array, field: number): void;
}
