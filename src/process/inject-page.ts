/**
 * xsplice's inject page in a target process: one RX page of stub code
 * (`inject-stub.ts`), one RW page of per-slot save areas, and one XSAVE image
 * area per slot, all from one `memfd_create("xsplice-inject")` file mapped
 * privately (`/memfd:xsplice-inject (deleted)` in `/proc/PID/maps`, no fd left
 * open in the target). It is created the first time xsplice injects code into
 * a process and kept for the process's life: it is found again by name, a
 * forked child inherits a private copy, and an exec drops it.
 *
 * A slot is in use (busy word 1) from the moment the tracer writes its resume
 * context until the tracer has put the thread back; a thread that restores
 * itself (its tracer died) leaves the word set, and the next tracer reclaims
 * the slot once the owner thread is gone or provably outside the injection.
 * Only one xsplice works on a process at a time (the seize is the lock), so the
 * busy words need no atomic operations.
 */
import { closeSync, openSync, readSync, writeSync } from "node:fs";
import { XspliceError } from "../errors.ts";
import { CHUNK, DATA_DISTANCE, FIELD, FIELDS_SIZE, REG_ORDER, SLOT_COUNT, stubCode } from "./inject-stub.ts";
import { ptraceSetFpState, ptraceSetSigmask, type Regs } from "./libc.ts";
import { type Mapping, readMaps } from "./maps.ts";
import { readMemory, writeMemory } from "./memory.ts";
import { listTids, type Tracee } from "./threads.ts";

/** The memfd name the page is created under and found again by. */
export const INJECT_NAME = "xsplice-inject";

/** Where the inject page of a process lies. */
export interface InjectPage {
  /** The code page (RX): slot `i`'s stub at `code + i * CHUNK`. */
  code: bigint;
  /** The data page (RW): slot `i`'s fields at `data + i * CHUNK` (= code + 4096). */
  data: bigint;
  /** Slot `i`'s XSAVE image at `images + i * imageSize` (64-byte aligned). */
  images: bigint;
  imageSize: number;
}

/** A bootstrap system call: runs `nr(args)` in the stopped thread without the inject page. */
export type BootstrapSyscall = (nr: number, args: bigint[], what: string) => bigint;

const PAGE = 4096;
const SYS_MMAP = 9;
const SYS_MPROTECT = 10;
const SYS_MUNMAP = 11;
const SYS_CLOSE = 3;
const SYS_FTRUNCATE = 77;
const SYS_MEMFD_CREATE = 319;
const MFD_CLOEXEC = 1;
const PROT_RW = 3;
const PROT_RX = 5;
const MAP_PRIVATE = 2;

function hex(v: bigint): string {
  return `0x${v.toString(16)}`;
}

/** The inject page of `pid` from its maps, or undefined when there is none. */
export function findInjectPage(
  pid: number,
  maps: readonly Mapping[] = readMaps(pid),
): InjectPage | undefined {
  const ours = maps.filter((m) => m.path === `/memfd:${INJECT_NAME}`);
  const code = ours.find((m) => m.offset === 0n && m.perms.exec);
  if (!code) return undefined;
  const data = ours.find((m) => m.start === code.end && m.offset === BigInt(PAGE) && m.perms.write);
  const imagesLen = data ? Number(data.end - data.start) - PAGE : 0;
  if (
    !data ||
    code.end - code.start !== BigInt(PAGE) ||
    imagesLen <= 0 ||
    imagesLen % (SLOT_COUNT * PAGE) !== 0
  )
    throw new XspliceError(
      "EINVAL",
      `process ${pid}: ${INJECT_NAME} mapping at ${hex(code.start)} has an unknown layout`,
      {
        pid,
        address: code.start,
      },
    );
  return {
    code: code.start,
    data: data.start,
    images: data.start + BigInt(PAGE),
    imageSize: imagesLen / SLOT_COUNT,
  };
}

/**
 * Map a new inject page with bootstrap system calls (the vDSO single-step
 * path: the one short window where a killed xsplice leaves the thread with
 * injected registers; once per process). `xstateSize` sizes the image slots.
 */
export function createInjectPage(
  tracee: Tracee,
  tid: number,
  xstateSize: number,
  syscall: BootstrapSyscall,
): InjectPage {
  const imageSize = Math.max(PAGE, Math.ceil((xstateSize + 64) / PAGE) * PAGE);
  const total = BigInt(2 * PAGE + SLOT_COUNT * imageSize);
  const name = Buffer.from(`${INJECT_NAME}\0`);
  // The name lives below the red zone for the duration of memfd_create: free stack by the ABI.
  const at = (tracee.regs(tid).rsp - 128n - 512n - BigInt(name.length)) & ~15n;
  writeMemory(tracee.pid, at, name, { tid });
  const fd = syscall(SYS_MEMFD_CREATE, [at, BigInt(MFD_CLOEXEC)], `memfd_create("${INJECT_NAME}")`);
  let base = 0n;
  try {
    syscall(SYS_FTRUNCATE, [fd, total], `ftruncate(memfd, ${total})`);
    base = syscall(
      SYS_MMAP,
      [0n, total, BigInt(PROT_RW), BigInt(MAP_PRIVATE), fd, 0n],
      `mmap(${INJECT_NAME})`,
    );
    const code = stubCode();
    const page = new Uint8Array(PAGE);
    for (let i = 0; i < SLOT_COUNT; i++) page.set(code, i * CHUNK);
    writeMemory(tracee.pid, base, page, { tid });
    syscall(SYS_MPROTECT, [base, BigInt(PAGE), BigInt(PROT_RX)], `mprotect(${INJECT_NAME} code)`);
  } catch (err) {
    if (base !== 0n) {
      try {
        syscall(SYS_MUNMAP, [base, total], `munmap(${INJECT_NAME})`);
      } catch {
        // Already failing: report the first error.
      }
    }
    throw err;
  } finally {
    syscall(SYS_CLOSE, [fd], "close(memfd)");
  }
  return { code: base, data: base + BigInt(PAGE), images: base + BigInt(2 * PAGE), imageSize };
}

/** The resume context, fields and image of one slot as the stub would restore them. */
export interface SlotState {
  busy: boolean;
  owner: number;
  done: boolean;
  result: bigint;
  mask: bigint;
  image: bigint;
  imageLen: number;
  /** The general registers, rsp, rip and flags of the resume context. */
  regs: Partial<Regs>;
}

/** Decode one data chunk. */
export function decodeSlot(b: Buffer): SlotState {
  const regs: Partial<Regs> = {};
  REG_ORDER.forEach((r, i) => {
    regs[r] = b.readBigUInt64LE(FIELD.regs + 8 * i);
  });
  regs.rsp = b.readBigUInt64LE(FIELD.rsp);
  regs.rip = b.readBigUInt64LE(FIELD.rip);
  regs.eflags = b.readBigUInt64LE(FIELD.flags);
  return {
    busy: b.readUInt32LE(FIELD.busy) !== 0,
    owner: b.readUInt32LE(FIELD.owner),
    done: b.readBigUInt64LE(FIELD.done) !== 0n,
    result: b.readBigUInt64LE(FIELD.result),
    mask: b.readBigUInt64LE(FIELD.mask),
    image: b.readBigUInt64LE(FIELD.image),
    imageLen: Number(b.readBigUInt64LE(FIELD.imageLen)),
    regs,
  };
}

/** What a slot is filled with before an injection. */
export interface SlotFill {
  owner: number;
  fn: bigint;
  image: bigint;
  imageLen: number;
  mask: bigint;
  waitMs: number;
  resume: Regs;
}

/** Encode a data chunk for an injection (busy, not done). */
export function encodeSlot(f: SlotFill): Buffer {
  const b = Buffer.alloc(FIELDS_SIZE);
  b.writeUInt32LE(1, FIELD.busy);
  b.writeUInt32LE(f.owner, FIELD.owner);
  b.writeBigUInt64LE(BigInt(Math.floor(f.waitMs / 1000)), FIELD.tvSec);
  b.writeBigUInt64LE(BigInt((f.waitMs % 1000) * 1000), FIELD.tvUsec);
  b.writeBigUInt64LE(f.fn, FIELD.fn);
  b.writeBigUInt64LE(f.image, FIELD.image);
  b.writeBigUInt64LE(BigInt(f.imageLen), FIELD.imageLen);
  b.writeBigUInt64LE(BigInt.asUintN(64, f.mask), FIELD.mask);
  REG_ORDER.forEach((r, i) => {
    b.writeBigUInt64LE(BigInt.asUintN(64, f.resume[r]), FIELD.regs + 8 * i);
  });
  b.writeBigUInt64LE(f.resume.rsp, FIELD.rsp);
  b.writeBigUInt64LE(f.resume.rip, FIELD.rip);
  b.writeBigUInt64LE(f.resume.eflags, FIELD.flags);
  return b;
}

const ERESTARTSYS = -512n;
const ERESTARTNOINTR = -513n;
const ERESTARTNOHAND = -514n;
const ERESTART_RESTARTBLOCK = -516n;
const NR_RESTART_SYSCALL = 219n;

/**
 * The context a stopped thread resumes with when its tracer lets it go with
 * the registers it has: a thread stopped inside an interrupted system call
 * has the kernel's restart applied (rax back to the call number or to
 * `restart_syscall`, rip back onto the `syscall` instruction), which is what
 * the kernel would do on the way out of the stop. The stub restores this
 * context by itself, so the restart must be in it.
 */
export function resumeContext(r: Regs): Regs {
  const out = { ...r, orig_rax: BigInt.asUintN(64, -1n) };
  if (BigInt.asIntN(64, r.orig_rax) < 0n) return out;
  const ret = BigInt.asIntN(64, r.rax);
  if (ret === ERESTARTSYS || ret === ERESTARTNOINTR || ret === ERESTARTNOHAND) {
    out.rax = r.orig_rax;
    out.rip = r.rip - 2n;
  } else if (ret === ERESTART_RESTARTBLOCK) {
    out.rax = NR_RESTART_SYSCALL;
    out.rip = r.rip - 2n;
  }
  return out;
}

/** Per-Tracee view of the inject page: where it is and which slots are free. */
export class InjectSlots {
  readonly page: InjectPage;
  private readonly tracee: Tracee;
  private readonly free: number[];
  private fd: number | undefined;

  constructor(tracee: Tracee, page: InjectPage, free: number[]) {
    this.tracee = tracee;
    this.page = page;
    this.free = free;
  }

  /** True when `pc` lies in the stub code. */
  inCode(pc: bigint): boolean {
    return pc >= this.page.code && pc < this.page.code + BigInt(PAGE);
  }

  codeOf(slot: number): bigint {
    return this.page.code + BigInt(slot * CHUNK);
  }

  dataOf(slot: number): bigint {
    return this.page.data + BigInt(slot * CHUNK);
  }

  imageOf(slot: number): bigint {
    return this.page.images + BigInt(slot * this.page.imageSize);
  }

  /** Take a free slot, or `EBUSY` when every slot is held by an unfinished injection. */
  take(tid: number): number {
    const slot = this.free.shift();
    if (slot === undefined)
      throw new XspliceError(
        "EBUSY",
        `process ${this.tracee.pid}: all ${SLOT_COUNT} inject slots are held by unfinished injections`,
        { pid: this.tracee.pid, tid },
      );
    return slot;
  }

  /** Give a slot back: its busy word is cleared in the target. */
  release(slot: number): void {
    try {
      this.write(this.dataOf(slot) + BigInt(FIELD.busy), new Uint8Array(4));
    } catch {
      // The process is gone or the page was unmapped: nothing to free.
    }
    if (!this.free.includes(slot)) this.free.push(slot);
    this.free.sort((a, b) => a - b);
  }

  /** Forget a slot whose busy word must stay set (its thread may still use it). */
  keep(slot: number): void {
    const i = this.free.indexOf(slot);
    if (i >= 0) this.free.splice(i, 1);
  }

  /** An open `/proc/PID/mem` for polling while the thread runs (kept until `close`). */
  memFd(): number {
    this.fd ??= openSync(`/proc/${this.tracee.pid}/mem`, "r+");
    return this.fd;
  }

  /** Read `len` bytes at `addr` through the held descriptor. */
  read(addr: bigint, len: number): Buffer {
    const b = Buffer.alloc(len);
    let done = 0;
    while (done < len) {
      const n = readSync(this.memFd(), b, done, len - done, Number(addr) + done);
      if (n <= 0)
        throw new XspliceError(
          "EFAULT",
          `cannot read ${len} byte(s) at ${hex(addr)} in process ${this.tracee.pid}`,
          {
            pid: this.tracee.pid,
            address: addr,
          },
        );
      done += n;
    }
    return b;
  }

  /** Write bytes through the held descriptor. */
  write(addr: bigint, bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) {
      const n = writeSync(this.memFd(), bytes, done, bytes.length - done, Number(addr) + done);
      if (n <= 0)
        throw new XspliceError(
          "EFAULT",
          `cannot write ${bytes.length} byte(s) at ${hex(addr)} in process ${this.tracee.pid}`,
          { pid: this.tracee.pid, address: addr },
        );
      done += n;
    }
  }

  /** Drop the held descriptor. */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /** The decoded fields of a slot. */
  slot(slot: number): SlotState {
    return decodeSlot(this.read(this.dataOf(slot), FIELDS_SIZE));
  }

  /**
   * Put a stopped thread that sits in the stub code (an injection whose tracer
   * died) back into the context the stub would restore: FPU image and signal
   * mask first, registers last, so that a tracer killed in between leaves the
   * thread in the stub, which then does the same. Returns true if it did.
   */
  finishLeftover(tid: number): boolean {
    const cur = this.tracee.regs(tid);
    if (!this.inCode(cur.rip)) return false;
    const slot = Number(cur.rip - this.page.code) / CHUNK;
    const index = Math.floor(slot);
    const s = this.slot(index);
    if (s.image !== 0n && s.imageLen > 0) ptraceSetFpState(tid, this.read(s.image, s.imageLen));
    ptraceSetSigmask(tid, s.mask);
    this.tracee.setRegs(tid, { ...cur, ...s.regs, orig_rax: BigInt.asUintN(64, -1n) });
    this.release(index);
    return true;
  }
}

const views = new WeakMap<Tracee, InjectSlots>();

/**
 * The inject slots of `tracee`'s process, finding the page or creating it
 * (through `syscall`, in stopped thread `tid`) on first use. The first use per
 * Tracee decides which slots are free: a busy slot is reclaimed when its owner
 * thread is gone, or is stopped outside the stub with its stack pointer not
 * below the slot's saved one (so it is not inside an injected call either).
 * The cached view is checked against the code in the target on every use, so
 * an exec or an unmapped page is noticed.
 */
export function injectSlots(
  tracee: Tracee,
  tid: number,
  xstateSize: () => number,
  syscall: BootstrapSyscall,
): InjectSlots {
  const cached = views.get(tracee);
  if (cached) {
    try {
      if (cached.read(cached.page.code, CHUNK).equals(STUB)) return cached;
    } catch {
      // Gone: find or create it again.
    }
    cached.close();
    views.delete(tracee);
  }
  let page = findInjectPage(tracee.pid);
  let free: number[];
  if (page) {
    const code = readMemory(tracee.pid, page.code, PAGE);
    for (let i = 0; i < SLOT_COUNT; i++)
      if (!Buffer.from(code.subarray(i * CHUNK, (i + 1) * CHUNK)).equals(Buffer.from(paddedStub())))
        throw new XspliceError(
          "EINVAL",
          `process ${tracee.pid}: ${INJECT_NAME} holds code of another version`,
          {
            pid: tracee.pid,
            address: page.code,
          },
        );
    free = reclaimable(tracee, page);
  } else {
    page = createInjectPage(tracee, tid, xstateSize(), syscall);
    free = [...Array(SLOT_COUNT).keys()];
  }
  const view = new InjectSlots(tracee, page, free);
  views.set(tracee, view);
  return view;
}

function paddedStub(): Uint8Array {
  const out = new Uint8Array(CHUNK);
  out.set(stubCode());
  return out;
}

const STUB = Buffer.from(paddedStub());

function reclaimable(tracee: Tracee, page: InjectPage): number[] {
  const data = Buffer.from(readMemory(tracee.pid, page.data, PAGE));
  const live = new Set(listTids(tracee.pid));
  const free: number[] = [];
  for (let i = 0; i < SLOT_COUNT; i++) {
    const s = decodeSlot(data.subarray(i * CHUNK, i * CHUNK + FIELDS_SIZE));
    if (!s.busy || !live.has(s.owner)) {
      free.push(i);
      continue;
    }
    let regs: Regs;
    try {
      regs = tracee.regs(s.owner); // throws unless stopped and ours
    } catch {
      continue;
    }
    const inStub = regs.rip >= page.code && regs.rip < page.code + BigInt(PAGE);
    const inCall = regs.rsp < (s.regs.rsp ?? 0n) && regs.rsp > (s.regs.rsp ?? 0n) - (1n << 23n);
    if (!inStub && !inCall) free.push(i);
  }
  return free;
}

/** Bytes from the code page to the data page (re-exported for tests). */
export const INJECT_DATA_DISTANCE = DATA_DISTANCE;
