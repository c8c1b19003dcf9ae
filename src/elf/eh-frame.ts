/**
 * A compact reader and interpreter of `.eh_frame` call frame information (the
 * DWARF CFI dialect of the LSB / x86-64 psABI §4.2.4), enough to unwind the
 * frames gcc and glibc emit on x86-64 for the SPEC §6 safety check: which
 * return addresses are on a stopped thread's stack.
 *
 * Addresses here are link-time (`sh_addr`); the caller subtracts the load bias.
 * Anything beyond what gcc emits for ordinary code (DWARF expressions, unknown
 * opcodes, text/func-relative encodings) becomes an `unknown` or `expression`
 * rule rather than an exception, so the unwinder can fall back.
 */
import { elfError } from "../errors.ts";
import { Cursor } from "./_cursor.ts";

/** `DW_EH_PE_*` pointer encodings: low nibble is the format, high nibble the base. */
export const DW_EH_PE = {
  absptr: 0x00,
  uleb128: 0x01,
  udata2: 0x02,
  udata4: 0x03,
  udata8: 0x04,
  sleb128: 0x09,
  sdata2: 0x0a,
  sdata4: 0x0b,
  sdata8: 0x0c,
  pcrel: 0x10,
  textrel: 0x20,
  datarel: 0x30,
  funcrel: 0x40,
  aligned: 0x50,
  indirect: 0x80,
  omit: 0xff,
} as const;

/** DWARF register numbers of x86-64 (psABI figure 3.36) that the unwinder uses. */
export const X86_64_DWARF = {
  rax: 0,
  rdx: 1,
  rcx: 2,
  rbx: 3,
  rsi: 4,
  rdi: 5,
  rbp: 6,
  rsp: 7,
  ra: 16,
} as const;

/**
 * x86-64 DWARF register numbers 0–16 as `user_regs_struct` names (psABI figure
 * 3.36); column 16 is the return address, which the unwinder treats as `rip`.
 */
export const X86_64_DWARF_REGS = [
  "rax",
  "rdx",
  "rcx",
  "rbx",
  "rsi",
  "rdi",
  "rbp",
  "rsp",
  "r8",
  "r9",
  "r10",
  "r11",
  "r12",
  "r13",
  "r14",
  "r15",
  "rip",
] as const;

/** A Common Information Entry. */
export interface Cie {
  /** Offset of the entry's length field in `.eh_frame`. */
  offset: number;
  version: number;
  augmentation: string;
  codeAlign: bigint;
  dataAlign: bigint;
  /** DWARF register number that holds the return address (16 on x86-64). */
  raRegister: number;
  /** Encoding of the FDEs' `pc_begin` (`R` augmentation), absptr without it. */
  fdeEncoding: number;
  /** `S` augmentation: frames of this CIE are signal trampolines. */
  signalFrame: boolean;
  /** Byte range of the initial instructions in `.eh_frame`. */
  instructions: { start: number; end: number };
}

/** A Frame Description Entry: one function (or part of one). */
export interface Fde {
  /** Offset of the entry's length field in `.eh_frame`. */
  offset: number;
  cie: Cie;
  /** First address covered (link-time). */
  pcBegin: bigint;
  /** One past the last address covered. */
  pcEnd: bigint;
  /** Byte range of the instructions in `.eh_frame`. */
  instructions: { start: number; end: number };
}

/** How to compute the CFA: a register plus an offset, a DWARF expression, or not known (gave up). */
export type CfaRule =
  | { kind: "register"; register: number; offset: bigint }
  | { kind: "expression" }
  | { kind: "unknown"; reason: string };

/** Where a register's value in the caller is. Registers without a rule keep their value ("same"). */
export type RegisterRule =
  | { kind: "undefined" }
  | { kind: "same" }
  | { kind: "offset"; offset: bigint }
  | { kind: "val_offset"; offset: bigint }
  | { kind: "register"; register: number }
  | { kind: "expression" }
  | { kind: "val_expression" };

/** The row of the CFI table in effect at an address. */
export interface CfiRow {
  /** Address where this row starts (link-time). */
  location: bigint;
  cfa: CfaRule;
  registers: Map<number, RegisterRule>;
  fde: Fde;
}

/** Where the bytes of the sections are and at which link-time address they start. */
export interface EhFrameInput {
  ehFrame: Uint8Array;
  ehFrameAddr: bigint;
  /** `.eh_frame_hdr`, whose sorted table makes lookups a binary search. */
  ehFrameHdr?: Uint8Array;
  ehFrameHdrAddr?: bigint;
}

const MASK64 = (1n << 64n) - 1n;

/**
 * Read a pointer in `encoding` at the cursor. `fieldAddr` is the link-time
 * address of the cursor position (for pcrel), `dataBase` the datarel base.
 * Returns undefined for encodings the unwinder does not need (textrel, funcrel, indirect).
 */
function readEncoded(c: Cursor, encoding: number, fieldAddr: bigint, dataBase?: bigint): bigint | undefined {
  if (encoding === DW_EH_PE.omit) return undefined;
  let v: bigint;
  switch (encoding & 0x0f) {
    case DW_EH_PE.absptr:
    case DW_EH_PE.udata8:
      v = c.u64();
      break;
    case DW_EH_PE.uleb128:
      v = c.uleb();
      break;
    case DW_EH_PE.udata2:
      v = BigInt(c.u16());
      break;
    case DW_EH_PE.udata4:
      v = BigInt(c.u32());
      break;
    case DW_EH_PE.sleb128:
      v = c.sleb();
      break;
    case DW_EH_PE.sdata2:
      v = BigInt((c.u16() << 16) >> 16);
      break;
    case DW_EH_PE.sdata4:
      v = BigInt(c.s32());
      break;
    case DW_EH_PE.sdata8:
      v = BigInt.asIntN(64, c.u64());
      break;
    default:
      throw c.fail("pointer encoding", encoding);
  }
  switch (encoding & 0x70) {
    case 0:
      break;
    case DW_EH_PE.pcrel:
      v += fieldAddr;
      break;
    case DW_EH_PE.datarel:
      if (dataBase === undefined) return undefined;
      v += dataBase;
      break;
    default:
      return undefined;
  }
  if (encoding & DW_EH_PE.indirect) return undefined;
  return v & MASK64;
}

/** Size in bytes of a pointer in `encoding`, or undefined for the variable-length LEB128 forms. */
function encodedSize(encoding: number): number | undefined {
  switch (encoding & 0x0f) {
    case DW_EH_PE.absptr:
    case DW_EH_PE.udata8:
    case DW_EH_PE.sdata8:
      return 8;
    case DW_EH_PE.udata4:
    case DW_EH_PE.sdata4:
      return 4;
    case DW_EH_PE.udata2:
    case DW_EH_PE.sdata2:
      return 2;
    default:
      return undefined;
  }
}

interface HdrTable {
  /** Offset of the first table entry in the header. */
  start: number;
  count: number;
  encoding: number;
  entrySize: number;
}

/** The CFI of one object: FDE lookup by address and the CFI row in effect at an address. */
export class EhFrame {
  private readonly bytes: Uint8Array;
  private readonly addr: bigint;
  private readonly hdr?: { bytes: Uint8Array; addr: bigint; table?: HdrTable };
  private readonly cies = new Map<number, Cie>();
  private sorted?: Fde[];

  constructor(input: EhFrameInput) {
    this.bytes = input.ehFrame;
    this.addr = input.ehFrameAddr;
    if (input.ehFrameHdr && input.ehFrameHdrAddr !== undefined) {
      this.hdr = { bytes: input.ehFrameHdr, addr: input.ehFrameHdrAddr };
      this.hdr.table = this.parseHdr();
    }
  }

  /** Every FDE in section order (parses the whole section once). */
  fdes(): Fde[] {
    const out: Fde[] = [];
    let pos = 0;
    while (pos < this.bytes.length) {
      const entry = this.entryAt(pos);
      if (!entry) break;
      if (entry.fde) out.push(entry.fde);
      pos = entry.next;
    }
    return out;
  }

  /** The FDE covering link-time address `pc`, through `.eh_frame_hdr` when present. */
  findFde(pc: bigint): Fde | undefined {
    const table = this.hdr?.table;
    if (table) return this.findInHdr(table, pc);
    if (!this.sorted) this.sorted = this.fdes().sort((a, b) => (a.pcBegin < b.pcBegin ? -1 : 1));
    const list = this.sorted;
    let lo = 0;
    let hi = list.length - 1;
    let found: Fde | undefined;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const f = list[mid]!;
      if (f.pcBegin <= pc) {
        found = f;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found && pc < found.pcEnd ? found : undefined;
  }

  /** The CFI row in effect at link-time address `pc`, or undefined when no FDE covers it. */
  rowAt(pc: bigint): CfiRow | undefined {
    const fde = this.findFde(pc);
    return fde ? this.rowIn(fde, pc) : undefined;
  }

  /** Run the CIE's initial instructions and the FDE's instructions up to `pc` (DWARF 5 §6.4.2). */
  rowIn(fde: Fde, pc: bigint): CfiRow {
    const cie = fde.cie;
    const state: State = {
      location: fde.pcBegin,
      cfa: { kind: "unknown", reason: "no DW_CFA_def_cfa" },
      regs: new Map(),
    };
    const initial = this.execute(cie, cie.instructions, state, undefined, undefined);
    if (initial !== "done") return { location: state.location, cfa: state.cfa, registers: state.regs, fde };
    const initialRegs = new Map(state.regs);
    this.execute(cie, fde.instructions, state, initialRegs, pc);
    return { location: state.location, cfa: state.cfa, registers: state.regs, fde };
  }

  /**
   * Interpret CFA instructions. With `stopAt`, stop before the first advance
   * past it. Returns "done", "stopped", or "unknown" (state.cfa says why).
   */
  private execute(
    cie: Cie,
    range: { start: number; end: number },
    s: State,
    initial: Map<number, RegisterRule> | undefined,
    stopAt: bigint | undefined,
  ): "done" | "stopped" | "unknown" {
    const c = new Cursor(this.bytes, range.start, ".eh_frame CFA instructions", range.end);
    const stack: { cfa: CfaRule; regs: Map<number, RegisterRule> }[] = [];
    const giveUp = (reason: string) => {
      s.cfa = { kind: "unknown", reason };
      return "unknown" as const;
    };
    const advance = (to: bigint): boolean => {
      if (stopAt !== undefined && to > stopAt) return false;
      s.location = to;
      return true;
    };
    const restore = (reg: number) => {
      const r = initial?.get(reg);
      if (r) s.regs.set(reg, r);
      else s.regs.delete(reg);
    };
    const setCfaRegister = (reg: number, offset?: bigint) => {
      const old = s.cfa.kind === "register" ? s.cfa.offset : 0n;
      s.cfa = { kind: "register", register: reg, offset: offset ?? old };
    };
    while (c.pos < range.end) {
      const op = c.u8();
      const hi = op & 0xc0;
      const low = op & 0x3f;
      if (hi === 0x40) {
        if (!advance(s.location + BigInt(low) * cie.codeAlign)) return "stopped";
        continue;
      }
      if (hi === 0x80) {
        s.regs.set(low, { kind: "offset", offset: c.uleb() * cie.dataAlign });
        continue;
      }
      if (hi === 0xc0) {
        restore(low);
        continue;
      }
      switch (op) {
        case 0x00: // DW_CFA_nop
          break;
        case 0x01: {
          // DW_CFA_set_loc
          const at = this.addr + BigInt(c.pos);
          const to = readEncoded(c, cie.fdeEncoding, at);
          if (to === undefined) return giveUp("DW_CFA_set_loc with an unsupported encoding");
          if (!advance(to)) return "stopped";
          break;
        }
        case 0x02:
          if (!advance(s.location + BigInt(c.u8()) * cie.codeAlign)) return "stopped";
          break;
        case 0x03:
          if (!advance(s.location + BigInt(c.u16()) * cie.codeAlign)) return "stopped";
          break;
        case 0x04:
          if (!advance(s.location + BigInt(c.u32()) * cie.codeAlign)) return "stopped";
          break;
        case 0x05: {
          // DW_CFA_offset_extended
          const reg = c.small(c.uleb(), "register");
          s.regs.set(reg, { kind: "offset", offset: c.uleb() * cie.dataAlign });
          break;
        }
        case 0x06: // DW_CFA_restore_extended
          restore(c.small(c.uleb(), "register"));
          break;
        case 0x07: // DW_CFA_undefined
          s.regs.set(c.small(c.uleb(), "register"), { kind: "undefined" });
          break;
        case 0x08: // DW_CFA_same_value
          s.regs.set(c.small(c.uleb(), "register"), { kind: "same" });
          break;
        case 0x09: {
          // DW_CFA_register
          const reg = c.small(c.uleb(), "register");
          s.regs.set(reg, { kind: "register", register: c.small(c.uleb(), "register") });
          break;
        }
        case 0x0a: // DW_CFA_remember_state
          stack.push({ cfa: s.cfa, regs: new Map(s.regs) });
          break;
        case 0x0b: {
          // DW_CFA_restore_state
          const top = stack.pop();
          if (!top) return giveUp("DW_CFA_restore_state without remember_state");
          s.cfa = top.cfa;
          s.regs = top.regs;
          break;
        }
        case 0x0c: {
          // DW_CFA_def_cfa
          const reg = c.small(c.uleb(), "register");
          setCfaRegister(reg, c.uleb());
          break;
        }
        case 0x0d: // DW_CFA_def_cfa_register
          if (s.cfa.kind !== "register") return giveUp("DW_CFA_def_cfa_register after a CFA expression");
          setCfaRegister(c.small(c.uleb(), "register"));
          break;
        case 0x0e: // DW_CFA_def_cfa_offset
          if (s.cfa.kind !== "register") return giveUp("DW_CFA_def_cfa_offset after a CFA expression");
          s.cfa = { ...s.cfa, offset: c.uleb() };
          break;
        case 0x0f: // DW_CFA_def_cfa_expression: kept as a marker, the unwinder gives up on it
          c.skip(c.small(c.uleb(), "expression length"));
          s.cfa = { kind: "expression" };
          break;
        case 0x10: {
          // DW_CFA_expression
          const reg = c.small(c.uleb(), "register");
          c.skip(c.small(c.uleb(), "expression length"));
          s.regs.set(reg, { kind: "expression" });
          break;
        }
        case 0x11: {
          // DW_CFA_offset_extended_sf
          const reg = c.small(c.uleb(), "register");
          s.regs.set(reg, { kind: "offset", offset: c.sleb() * cie.dataAlign });
          break;
        }
        case 0x12: {
          // DW_CFA_def_cfa_sf
          const reg = c.small(c.uleb(), "register");
          setCfaRegister(reg, c.sleb() * cie.dataAlign);
          break;
        }
        case 0x13: // DW_CFA_def_cfa_offset_sf
          if (s.cfa.kind !== "register") return giveUp("DW_CFA_def_cfa_offset_sf after a CFA expression");
          s.cfa = { ...s.cfa, offset: c.sleb() * cie.dataAlign };
          break;
        case 0x14: {
          // DW_CFA_val_offset
          const reg = c.small(c.uleb(), "register");
          s.regs.set(reg, { kind: "val_offset", offset: c.uleb() * cie.dataAlign });
          break;
        }
        case 0x15: {
          // DW_CFA_val_offset_sf
          const reg = c.small(c.uleb(), "register");
          s.regs.set(reg, { kind: "val_offset", offset: c.sleb() * cie.dataAlign });
          break;
        }
        case 0x16: {
          // DW_CFA_val_expression
          const reg = c.small(c.uleb(), "register");
          c.skip(c.small(c.uleb(), "expression length"));
          s.regs.set(reg, { kind: "val_expression" });
          break;
        }
        case 0x2e: // DW_CFA_GNU_args_size: only matters for exception landing pads
          c.uleb();
          break;
        case 0x2f: {
          // DW_CFA_GNU_negative_offset_extended
          const reg = c.small(c.uleb(), "register");
          s.regs.set(reg, { kind: "offset", offset: -c.uleb() * cie.dataAlign });
          break;
        }
        default:
          return giveUp(
            `unknown CFA opcode 0x${op.toString(16)} at .eh_frame offset 0x${(c.pos - 1).toString(16)}`,
          );
      }
    }
    return "done";
  }

  /** Parse the entry (CIE or FDE) at `pos`; undefined at the zero terminator. */
  private entryAt(pos: number): { next: number; fde?: Fde; cie?: Cie } | undefined {
    const c = new Cursor(this.bytes, pos, ".eh_frame");
    let length: number = c.u32();
    if (length === 0) return undefined;
    if (length === 0xffffffff) length = c.small(c.u64(), "entry length");
    const body = c.pos;
    const end = body + length;
    if (end > this.bytes.length)
      throw elfError("EINVAL", pos, ".eh_frame entry runs past the section", length);
    const id = c.u32();
    if (id === 0) return { next: end, cie: this.cieAt(pos) };
    const ciePos = body - id;
    if (ciePos < 0) throw elfError("EINVAL", body, ".eh_frame FDE points before the section", id);
    const cie = this.cieAt(ciePos);
    const beginAt = this.addr + BigInt(c.pos);
    const pcBegin = readEncoded(c, cie.fdeEncoding, beginAt);
    // pc_range uses the format of the encoding but no base (LSB "Exception Frames").
    const range = readEncoded(c, cie.fdeEncoding & 0x0f, 0n);
    if (pcBegin === undefined || range === undefined)
      throw elfError("EINVAL", pos, ".eh_frame FDE with an unsupported pointer encoding", cie.fdeEncoding);
    if (cie.augmentation.startsWith("z")) {
      const augLen = c.small(c.uleb(), "augmentation length");
      c.pos += augLen;
    }
    if (c.pos > end) throw elfError("EINVAL", pos, ".eh_frame FDE header runs past its entry");
    return {
      next: end,
      fde: { offset: pos, cie, pcBegin, pcEnd: pcBegin + range, instructions: { start: c.pos, end } },
    };
  }

  private cieAt(pos: number): Cie {
    const cached = this.cies.get(pos);
    if (cached) return cached;
    const c = new Cursor(this.bytes, pos, ".eh_frame CIE");
    let length: number = c.u32();
    if (length === 0xffffffff) length = c.small(c.u64(), "entry length");
    const end = c.pos + length;
    if (length === 0 || end > this.bytes.length)
      throw elfError("EINVAL", pos, ".eh_frame CIE length", length);
    if (c.u32() !== 0) throw elfError("EINVAL", pos, ".eh_frame FDE's CIE pointer does not point at a CIE");
    const version = c.u8();
    if (version !== 1 && version !== 3) throw elfError("EINVAL", pos, ".eh_frame CIE version", version);
    const augmentation = c.cstring();
    if (augmentation.includes("eh")) c.u64();
    const codeAlign = c.uleb();
    const dataAlign = c.sleb();
    const raRegister = version === 1 ? c.u8() : c.small(c.uleb(), "return address register");
    let fdeEncoding: number = DW_EH_PE.absptr;
    let signalFrame = false;
    if (augmentation.startsWith("z")) {
      const augLen = c.small(c.uleb(), "augmentation length");
      const augEnd = c.pos + augLen;
      for (const ch of augmentation.slice(1)) {
        if (ch === "R") fdeEncoding = c.u8();
        else if (ch === "L") c.u8();
        else if (ch === "S") signalFrame = true;
        else if (ch === "P") {
          const enc = c.u8();
          const size = encodedSize(enc);
          if (size === undefined) readEncoded(c, enc & 0x0f, 0n);
          else c.pos += size;
        } else break; // unknown letters: the length lets us skip the rest
      }
      c.pos = augEnd;
    }
    if (c.pos > end) throw elfError("EINVAL", pos, ".eh_frame CIE header runs past its entry");
    const cie: Cie = {
      offset: pos,
      version,
      augmentation,
      codeAlign,
      dataAlign,
      raRegister,
      fdeEncoding,
      signalFrame,
      instructions: { start: c.pos, end },
    };
    this.cies.set(pos, cie);
    return cie;
  }

  /** Validate `.eh_frame_hdr` and locate its table; undefined when there is none usable (then FDEs are scanned). */
  private parseHdr(): HdrTable | undefined {
    const h = this.hdr!;
    const c = new Cursor(h.bytes, 0, ".eh_frame_hdr");
    if (h.bytes.length < 4 || c.u8() !== 1) return undefined;
    const ptrEnc = c.u8();
    const countEnc = c.u8();
    const tableEnc = c.u8();
    readEncoded(c, ptrEnc, h.addr + BigInt(c.pos), h.addr);
    if (countEnc === DW_EH_PE.omit || tableEnc === DW_EH_PE.omit) return undefined;
    const count = readEncoded(c, countEnc, h.addr + BigInt(c.pos), h.addr);
    const entrySize = encodedSize(tableEnc);
    if (count === undefined || entrySize === undefined) return undefined;
    const n = c.small(count, "FDE count");
    if (c.pos + n * 2 * entrySize > h.bytes.length)
      throw elfError("EINVAL", c.pos, ".eh_frame_hdr table runs past the section", n);
    return { start: c.pos, count: n, encoding: tableEnc, entrySize };
  }

  private findInHdr(t: HdrTable, pc: bigint): Fde | undefined {
    const h = this.hdr!;
    const c = new Cursor(h.bytes, 0, ".eh_frame_hdr table");
    const read = (i: number, which: 0 | 1): bigint => {
      c.pos = t.start + (2 * i + which) * t.entrySize;
      const v = readEncoded(c, t.encoding, h.addr + BigInt(c.pos), h.addr);
      if (v === undefined) throw elfError("EINVAL", c.pos, ".eh_frame_hdr table encoding", t.encoding);
      return v;
    };
    let lo = 0;
    let hi = t.count - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (read(mid, 0) <= pc) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0) return undefined;
    const at = read(found, 1) - this.addr;
    if (at < 0n || at >= BigInt(this.bytes.length))
      throw elfError(
        "EINVAL",
        t.start + 2 * found * t.entrySize,
        ".eh_frame_hdr entry points outside .eh_frame",
        at,
      );
    const entry = this.entryAt(Number(at));
    const fde = entry?.fde;
    return fde && fde.pcBegin <= pc && pc < fde.pcEnd ? fde : undefined;
  }
}

interface State {
  location: bigint;
  cfa: CfaRule;
  regs: Map<number, RegisterRule>;
}
