/**
 * Stack facts of one stopped thread for the SPEC §6 safety check: its program
 * counter and the return addresses on its stack, so that an action can refuse
 * to patch a function a thread is executing in or will return into.
 *
 * Three methods, tried in order: `.eh_frame` CFI unwinding (exact where every
 * frame has CFI), a frame-pointer walk from where CFI stopped, and a
 * conservative scan of every stack word between `rsp` and the top of the stack
 * mapping. The scan runs always, and its result is reported apart
 * (`possibleReturnAddresses`): it is a superset of the real return addresses
 * (it can only miss frames on another stack, e.g. a `sigaltstack`), but stale
 * words and saved function pointers make it report extra ones.
 *
 * Choice: `addressesToCheck(facts)` — what the safety check should use — is
 * conservative by default (pc + unwound + scanned), because a missed return
 * address corrupts the target while an extra one only delays the action until
 * it times out with `EBUSY`. Callers that prefer progress can ask for
 * `"unwound"`, which trusts the unwinder only when it reached the outermost
 * frame by CFI or a zero-terminated frame-pointer chain, and falls back to the
 * scan otherwise (the SPEC §6 wording: "else scan the stack words").
 *
 * Everything comes in as parameters (registers, a memory reader, the maps, an
 * object lookup), so the logic runs the same against a ptrace-stopped thread
 * or a synthetic stack.
 */
import { type EhFrame, type RegisterRule, X86_64_DWARF_REGS } from "../elf/eh-frame.ts";
import { XspliceError } from "../errors.ts";
import type { AddressRange } from "./free-ranges.ts";
import { type Mapping, mappingAt } from "./maps.ts";

/** The general registers the walk uses (user_regs_struct names); only rip, rsp and rbp are required. */
export interface StackRegisters {
  rip: bigint;
  rsp: bigint;
  rbp: bigint;
  rax?: bigint;
  rbx?: bigint;
  rcx?: bigint;
  rdx?: bigint;
  rsi?: bigint;
  rdi?: bigint;
  r8?: bigint;
  r9?: bigint;
  r10?: bigint;
  r11?: bigint;
  r12?: bigint;
  r13?: bigint;
  r14?: bigint;
  r15?: bigint;
}

/** What the unwinder needs of a mapped object: its load bias and its CFI (link-time addresses). */
export interface UnwindObject {
  bias: bigint;
  ehFrame(): EhFrame | undefined;
}

/** Inputs of `stackFacts`. */
export interface StackInput {
  regs: StackRegisters;
  /** Read `len` bytes of the target's memory at `addr` (e.g. `/proc/PID/mem`); may return fewer at a mapping end. */
  read: (addr: bigint, len: number) => Uint8Array;
  /** The target's maps (sorted by address, as `readMaps` returns them). */
  maps: readonly Mapping[];
  /** The object mapped at a runtime address, if any; without it only frame pointers and the scan are used. */
  objectAt?: (pc: bigint) => UnwindObject | undefined;
  /** Most frames walked. Default 1024. */
  maxFrames?: number;
  /** Most stack bytes read and scanned from `rsp` upwards. Default 16 MiB. */
  maxScanBytes?: number;
}

/** How the precise return addresses were found. */
export type StackMethod = "eh_frame" | "frame-pointer" | "scan";

/** The stack facts of one thread. */
export interface StackFacts {
  pc: bigint;
  /** Return addresses of the unwound frames, innermost first (the pc itself excluded). */
  returnAddresses: bigint[];
  /** `eh_frame` when CFI described every frame, `frame-pointer` when the rbp chain took over, `scan` when neither gave anything. */
  method: StackMethod;
  /** The walk reached the outermost frame (CFI with an undefined return address, or a zero rbp / return address). */
  complete: boolean;
  /** Why the precise walk stopped early, when it did. */
  stopReason?: string;
  /** Every stack word from rsp to the top of its mapping that points into an executable mapping (unique, stack order). */
  possibleReturnAddresses: bigint[];
  /** The stack bytes that were scanned. */
  scanned?: AddressRange;
  /** The scan hit `maxScanBytes` before the top of the stack mapping. */
  scanTruncated: boolean;
}

const RSP = 7;
const RBP = 6;
const RIP = 16;

/** Executable ranges as doubles for a fast scan (user addresses are below 2^47, exact in a double). */
class ExecRanges {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  constructor(maps: readonly Mapping[]) {
    for (const m of maps) {
      if (!m.perms.exec || m.end > 1n << 53n) continue;
      this.starts.push(Number(m.start));
      this.ends.push(Number(m.end));
    }
  }
  has(v: number): boolean {
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (v < this.starts[mid]!) hi = mid - 1;
      else if (v >= this.ends[mid]!) lo = mid + 1;
      else return true;
    }
    return false;
  }
  hasBig(v: bigint): boolean {
    return v < 1n << 53n && this.has(Number(v));
  }
}

/** Executable ranges per maps array: built once per list of maps, not once per thread. */
const execCache = new WeakMap<readonly Mapping[], ExecRanges>();

function execRangesOf(maps: readonly Mapping[]): ExecRanges {
  let exec = execCache.get(maps);
  if (!exec) {
    exec = new ExecRanges(maps);
    execCache.set(maps, exec);
  }
  return exec;
}

/** The stack contents read once; the walkers read words from it, never from the target. */
class StackImage {
  readonly view: DataView;
  constructor(
    readonly base: bigint,
    readonly bytes: Uint8Array,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  get end(): bigint {
    return this.base + BigInt(this.bytes.length);
  }
  word(addr: bigint): bigint | undefined {
    if (addr < this.base || addr + 8n > this.end) return undefined;
    return this.view.getBigUint64(Number(addr - this.base), true);
  }
}

/**
 * Walk the stack of a stopped thread (see the module comment for the
 * methods). Fails only when memory cannot be read (`ESRCH`, `EIO` from
 * `read`); a stack that makes no sense yields `method: "scan"`.
 */
export function stackFacts(input: StackInput): StackFacts {
  const { regs, maps } = input;
  const maxFrames = input.maxFrames ?? 1024;
  const maxScan = input.maxScanBytes ?? 16 << 20;
  const exec = execRangesOf(maps);

  // Read the stack in one go: from rsp (8-aligned down) to the top of its mapping.
  const stackMap = mappingAt(maps, regs.rsp);
  let image: StackImage | undefined;
  let scanTruncated = false;
  if (stackMap) {
    const base = regs.rsp & ~7n;
    let len = stackMap.end - base;
    if (len > BigInt(maxScan)) {
      len = BigInt(maxScan);
      scanTruncated = true;
    }
    image = new StackImage(base, input.read(base, Number(len)));
  }

  const possible = image ? scanWords(image, exec) : [];
  const facts: StackFacts = {
    pc: regs.rip,
    returnAddresses: [],
    method: "eh_frame",
    complete: false,
    possibleReturnAddresses: possible,
    scanTruncated,
  };
  if (image) facts.scanned = { start: image.base, end: image.end };
  if (!image) {
    facts.method = "scan";
    facts.stopReason = `rsp 0x${regs.rsp.toString(16)} is in no mapping`;
    return facts;
  }

  const cfi = input.objectAt ? unwindCfi(regs, image, input.objectAt, exec, maxFrames) : undefined;
  if (cfi) facts.returnAddresses = cfi.returnAddresses;
  if (cfi?.complete) {
    facts.complete = true;
    return facts;
  }
  facts.stopReason = cfi?.reason ?? "no object lookup given";
  // CFI stopped (or was not available): continue along the frame-pointer chain from the registers it recovered.
  const from = cfi?.regs ?? { rsp: regs.rsp, rbp: regs.rbp };
  const fp = walkFramePointers(from.rsp, from.rbp, image, exec, maxFrames - facts.returnAddresses.length);
  if (fp.returnAddresses.length > 0 || fp.complete) {
    if (fp.returnAddresses.length > 0) facts.method = "frame-pointer";
    facts.returnAddresses.push(...fp.returnAddresses);
    facts.complete = fp.complete;
    if (fp.complete) delete facts.stopReason;
    else facts.stopReason = `${facts.stopReason}; ${fp.reason}`;
  } else if (facts.returnAddresses.length === 0) {
    facts.method = "scan";
    facts.returnAddresses = [...possible];
    facts.stopReason = `${facts.stopReason}; ${fp.reason}`;
  } else {
    facts.stopReason = `${facts.stopReason}; ${fp.reason}`;
  }
  return facts;
}

/** Which addresses the SPEC §6 safety check compares with the patched ranges; see the module comment. */
export function addressesToCheck(
  facts: StackFacts,
  policy: "conservative" | "unwound" = "conservative",
): bigint[] {
  const out = new Set<bigint>([facts.pc, ...facts.returnAddresses]);
  if (policy === "conservative" || !facts.complete || facts.method === "scan")
    for (const a of facts.possibleReturnAddresses) out.add(a);
  return [...out];
}

/**
 * The first address of `addressesToCheck(facts, policy)` that lies in the
 * byte range `[start, end)` a patch modifies, or undefined. A return address
 * is one past its call, and gcc ends a function with a call to a noreturn
 * function (the return address is then the function's end, or the next
 * function's start), so an address counts when it or the byte before it is
 * in the range: `start <= a <= end`.
 */
export function hitsRange(
  facts: StackFacts,
  start: bigint,
  end: bigint,
  policy: "conservative" | "unwound" = "conservative",
): bigint | undefined {
  return addressesToCheck(facts, policy).find((a) => a >= start && a <= end);
}

function scanWords(image: StackImage, exec: ExecRanges): bigint[] {
  const seen = new Set<number>();
  const out: bigint[] = [];
  const v = image.view;
  const n = image.bytes.length - 7;
  for (let off = 0; off < n; off += 8) {
    const hi = v.getUint32(off + 4, true);
    if (hi >= 0x8000) continue; // above the 47-bit user address space
    const value = hi * 0x100000000 + v.getUint32(off, true);
    if (value === 0 || seen.has(value) || !exec.has(value)) continue;
    seen.add(value);
    out.push(BigInt(value));
  }
  return out;
}

interface CfiResult {
  returnAddresses: bigint[];
  complete: boolean;
  reason?: string;
  /** rsp and rbp of the frame where CFI stopped, for the frame-pointer walk to continue from. */
  regs?: { rsp: bigint; rbp: bigint };
}

function unwindCfi(
  start: StackRegisters,
  image: StackImage,
  objectAt: (pc: bigint) => UnwindObject | undefined,
  exec: ExecRanges,
  maxFrames: number,
): CfiResult {
  const regs: (bigint | undefined)[] = X86_64_DWARF_REGS.map((name) => start[name]);
  const out: bigint[] = [];
  let signalFrame = false;
  const stop = (reason: string): CfiResult => {
    const rsp = regs[RSP];
    const rbp = regs[RBP];
    const result: CfiResult = { returnAddresses: out, complete: false, reason };
    if (rsp !== undefined && rbp !== undefined) result.regs = { rsp, rbp };
    return result;
  };
  for (let frame = 0; frame < maxFrames; frame++) {
    const pc: bigint = regs[RIP]!;
    const obj = objectAt(pc);
    const hexPc = `0x${pc.toString(16)}`;
    if (!obj) return stop(`no object mapped at ${hexPc}`);
    let eh: EhFrame | undefined;
    let row: ReturnType<EhFrame["rowAt"]>;
    try {
      eh = obj.ehFrame();
      // A return address may be one past a noreturn call at the end of the function: look up pc − 1 (DWARF 5 §6.4.4).
      const lookup: bigint = frame === 0 || signalFrame ? pc : pc - 1n;
      row = eh?.rowAt(lookup - obj.bias);
    } catch (err) {
      if (err instanceof XspliceError) return stop(`bad CFI at ${hexPc}: ${err.message}`);
      throw err;
    }
    if (!eh) return stop(`no .eh_frame for ${hexPc}`);
    if (!row) return stop(`no FDE covers ${hexPc}`);
    if (row.cfa.kind !== "register") return stop(`CFA at ${hexPc} is ${row.cfa.kind}`);
    const base = regs[row.cfa.register];
    if (base === undefined) return stop(`CFA register ${row.cfa.register} unknown at ${hexPc}`);
    const cfa = base + row.cfa.offset;
    const raRule = row.registers.get(row.fde.cie.raRegister);
    if (!raRule || raRule.kind === "undefined") return { returnAddresses: out, complete: true };
    const next = [...regs];
    next[RIP] = undefined;
    for (const [reg, rule] of row.registers) {
      if (reg >= next.length) continue;
      const v = applyRule(reg, rule, cfa, regs, image);
      if (v === "fail") {
        if (reg === row.fde.cie.raRegister) return stop(`return address rule ${rule.kind} at ${hexPc}`);
        next[reg] = undefined; // a register we cannot recover only matters if a later CFA uses it
      } else next[reg] = v;
    }
    next[RSP] = cfa; // the CFA is by definition the caller's rsp (x86-64 psABI §3.6)
    const ra = next[row.fde.cie.raRegister];
    if (ra === undefined) return stop(`return address unreadable at CFA 0x${cfa.toString(16)}`);
    if (ra === 0n) return { returnAddresses: out, complete: true };
    if (cfa <= regs[RSP]!) return stop(`CFA 0x${cfa.toString(16)} does not move up the stack at ${hexPc}`);
    if (!exec.hasBig(ra)) return stop(`return address 0x${ra.toString(16)} is not in executable memory`);
    out.push(ra);
    next[RIP] = ra;
    for (let i = 0; i < regs.length; i++) regs[i] = next[i];
    signalFrame = row.fde.cie.signalFrame;
  }
  return stop(`more than ${maxFrames} frames`);
}

function applyRule(
  reg: number,
  rule: RegisterRule,
  cfa: bigint,
  regs: (bigint | undefined)[],
  image: StackImage,
): bigint | undefined | "fail" {
  switch (rule.kind) {
    case "offset":
      return image.word(cfa + rule.offset) ?? "fail";
    case "val_offset":
      return cfa + rule.offset;
    case "register":
      return regs[rule.register] ?? "fail";
    case "same":
      return regs[reg] ?? "fail";
    case "undefined":
      return undefined;
    default:
      return "fail";
  }
}

interface FpResult {
  returnAddresses: bigint[];
  complete: boolean;
  reason: string;
}

/** Follow the rbp chain: [rbp] is the caller's rbp, [rbp+8] the return address (psABI §3.4.1 with frame pointers). */
function walkFramePointers(
  rsp: bigint,
  rbp: bigint,
  image: StackImage,
  exec: ExecRanges,
  maxFrames: number,
): FpResult {
  const out: bigint[] = [];
  let low = rsp;
  for (let i = 0; i < maxFrames; i++) {
    if (rbp === 0n) return { returnAddresses: out, complete: out.length > 0, reason: "rbp is 0" };
    if ((rbp & 7n) !== 0n || rbp < low)
      return { returnAddresses: out, complete: false, reason: `rbp 0x${rbp.toString(16)} is not a frame` };
    const saved = image.word(rbp);
    const ra = image.word(rbp + 8n);
    if (saved === undefined || ra === undefined)
      return {
        returnAddresses: out,
        complete: false,
        reason: `rbp 0x${rbp.toString(16)} is outside the stack`,
      };
    // Only rbp = 0 marks the outermost frame (psABI §3.4.1: _start clears it); a zero word here is data.
    if (ra === 0n)
      return { returnAddresses: out, complete: false, reason: `frame at 0x${rbp.toString(16)} returns to 0` };
    if (!exec.hasBig(ra))
      return {
        returnAddresses: out,
        complete: false,
        reason: `frame at 0x${rbp.toString(16)} returns to non-executable 0x${ra.toString(16)}`,
      };
    out.push(ra);
    low = rbp + 16n;
    if (saved !== 0n && saved <= rbp)
      return {
        returnAddresses: out,
        complete: false,
        reason: `rbp chain goes down at 0x${rbp.toString(16)}`,
      };
    rbp = saved;
  }
  return { returnAddresses: out, complete: false, reason: `more than ${maxFrames} frame-pointer frames` };
}
