/**
 * xsplice's inject page in a target process: one RX page of stub code
 * (`src/arch/…/inject-stub.ts`), one RW page of per-slot save areas, and one
 * XSAVE image area per slot, all from one `memfd_create("xsplice-inject")` file
 * mapped privately (`/memfd:xsplice-inject (deleted)` in `/proc/PID/maps`, no fd
 * left open in the target). It is created the first time xsplice injects code
 * into a process and kept for the process's life: it is found again by name, a
 * forked child inherits a private copy, and an exec drops it.
 *
 * A slot is in use (busy word 1) from the moment the tracer writes its resume
 * context until the tracer has put the thread back; a thread that restores
 * itself (its tracer died) leaves the word set, and the next tracer reclaims
 * the slot once the owner thread is gone or provably outside the injection.
 * Only one xsplice works on a process at a time (the seize is the lock), so the
 * busy words need no atomic operations.
 *
 * Creation runs five system calls through the bootstrap stub (`remote-call.ts`),
 * each kill-safe, in an order chosen so that a run killed between any two leaves
 * something the next run recognises and removes: memfd_create → ftruncate →
 * mmap (RW) → close → write the code → mprotect (code RX). Killed before the
 * mmap: a leaked descriptor (closed by the next creation). Killed after it: a
 * *half-made* page, one RW mapping of the full size, unmapped and made again.
 */

import {
  CHUNK,
  DATA_DISTANCE,
  decodeSlot,
  FIELD,
  FIELDS_SIZE,
  type Regs,
  SLOT_COUNT,
  type SlotState,
  SYS,
  stubCode,
} from "../arch/host.ts";
import { XspliceError } from "../errors.ts";
import { hex } from "../hex.ts";
import { descriptorsOpenOn } from "./descriptors.ts";
import { ptraceSetFpState, ptraceSetSigmask } from "./libc.ts";
import { type Mapping, readMaps } from "./maps.ts";
import { pausePoint } from "./pause-point.ts";
import { listTids, type Tracee } from "./threads.ts";

/** The memfd name the page is created under and found again by. */
export const INJECT_NAME = "xsplice-inject";
const INJECT_PATH = `/memfd:${INJECT_NAME}`;

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

/** What the maps say of a process's inject page. */
export type InjectPageFinding =
  | { kind: "none" }
  | { kind: "page"; page: InjectPage }
  /** A creation killed after its mmap: one RW mapping of a whole page's size, to be removed. */
  | { kind: "half-made"; start: bigint; end: bigint };

/**
 * The bootstrap system calls creation runs (`remote-call.ts`): `run(nr, args,
 * what)` returns the raw result (errno as an `XspliceError`), `scratch(bytes)`
 * puts call data (a name) in free stack memory of the thread for the next call
 * and returns its address.
 */
export interface BootstrapSyscalls {
  run(nr: number, args: bigint[], what: string): bigint;
  scratch(bytes: Uint8Array): bigint;
}

const PAGE = 4096;
const MFD_CLOEXEC = 1;
const PROT_RW = 3;
const PROT_RX = 5;
const MAP_PRIVATE = 2;

function imagesValid(len: number): boolean {
  return len > 0 && len % (SLOT_COUNT * PAGE) === 0;
}

/** The inject page of `pid` from its maps: none, a complete page, or a half-made one. */
export function findInjectPage(pid: number, maps: readonly Mapping[] = readMaps(pid)): InjectPageFinding {
  const ours = maps.filter((m) => m.path === INJECT_PATH);
  if (ours.length === 0) return { kind: "none" };
  const code = ours.find((m) => m.offset === 0n && m.perms.exec);
  if (code) {
    const data = ours.find((m) => m.start === code.end && m.offset === BigInt(PAGE) && m.perms.write);
    const imagesLen = data ? Number(data.end - data.start) - PAGE : 0;
    if (data && code.end - code.start === BigInt(PAGE) && imagesValid(imagesLen) && ours.length === 2)
      return {
        kind: "page",
        page: {
          code: code.start,
          data: data.start,
          images: data.start + BigInt(PAGE),
          imageSize: imagesLen / SLOT_COUNT,
        },
      };
  }
  const only = ours[0]!;
  if (
    ours.length === 1 &&
    only.offset === 0n &&
    only.perms.write &&
    !only.perms.exec &&
    imagesValid(Number(only.end - only.start) - 2 * PAGE)
  )
    return { kind: "half-made", start: only.start, end: only.end };
  throw new XspliceError(
    "EINVAL",
    `process ${pid}: ${INJECT_NAME} mapping at ${hex(ours[0]!.start)} has an unknown layout`,
    { pid, address: ours[0]!.start },
  );
}

/** Descriptors of `pid` open on an inject memfd: leftovers of a creation killed before its `close`. */
function leakedDescriptors(pid: number): number[] {
  return descriptorsOpenOn(pid, INJECT_PATH);
}

/**
 * True when a killed creation of the inject page left something behind in
 * `pid`: a half-made page or a descriptor of the memfd (issue #11 item 4).
 * The next creation removes both; a run that finds them makes the page at
 * once, so that what a killed run leaked does not wait for the next upload.
 */
export function injectPageLeftovers(pid: number): boolean {
  return findInjectPage(pid).kind === "half-made" || leakedDescriptors(pid).length > 0;
}

/**
 * Map a new inject page with bootstrap system calls, first removing what a
 * killed creation left (a half-made page, leaked descriptors). `xstateSize`
 * sizes the image slots.
 */
export function createInjectPage(
  tracee: Tracee,
  xstateSize: number,
  boot: BootstrapSyscalls,
  halfMade?: { start: bigint; end: bigint },
): InjectPage {
  if (halfMade)
    boot.run(SYS.munmap, [halfMade.start, halfMade.end - halfMade.start], `munmap(half-made ${INJECT_NAME})`);
  for (const fd of leakedDescriptors(tracee.pid))
    boot.run(SYS.close, [BigInt(fd)], `close(leaked ${INJECT_NAME} fd ${fd})`);
  const imageSize = Math.max(PAGE, Math.ceil((xstateSize + 64) / PAGE) * PAGE);
  const total = BigInt(2 * PAGE + SLOT_COUNT * imageSize);
  const name = boot.scratch(Buffer.from(`${INJECT_NAME}\0`));
  const fd = boot.run(SYS.memfd_create, [name, BigInt(MFD_CLOEXEC)], `memfd_create("${INJECT_NAME}")`);
  pausePoint("inject-page:memfd");
  let base = 0n;
  try {
    boot.run(SYS.ftruncate, [fd, total], `ftruncate(memfd, ${total})`);
    pausePoint("inject-page:sized");
    base = boot.run(
      SYS.mmap,
      [0n, total, BigInt(PROT_RW), BigInt(MAP_PRIVATE), fd, 0n],
      `mmap(${INJECT_NAME})`,
    );
    pausePoint("inject-page:mapped");
  } finally {
    boot.run(SYS.close, [fd], "close(memfd)");
  }
  pausePoint("inject-page:closed");
  try {
    const code = stubCode();
    const page = new Uint8Array(PAGE);
    for (let i = 0; i < SLOT_COUNT; i++) page.set(code, i * CHUNK);
    tracee.memory.write(base, page);
    pausePoint("inject-page:code");
    boot.run(SYS.mprotect, [base, BigInt(PAGE), BigInt(PROT_RX)], `mprotect(${INJECT_NAME} code)`);
  } catch (err) {
    try {
      boot.run(SYS.munmap, [base, total], `munmap(${INJECT_NAME})`);
    } catch {
      // Already failing: report the first error; the next run removes a half-made page.
    }
    throw err;
  }
  return { code: base, data: base + BigInt(PAGE), images: base + BigInt(2 * PAGE), imageSize };
}

/** Per-Tracee view of the inject page: where it is and which slots are free. */
export class InjectSlots {
  readonly page: InjectPage;
  private readonly tracee: Tracee;
  private readonly free: number[];

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

  /**
   * Give a slot back: its busy word, done mark and function are cleared in the
   * target, so that what a later run finds in a slot is only ever the trace
   * of an injection whose tracer died before finishing it (evidence for
   * recovery, `injectionEvidence`).
   */
  release(slot: number): void {
    try {
      this.tracee.memory.write(this.dataOf(slot), new Uint8Array(FIELD.fn + 8));
    } catch {
      // The process is gone or the page was unmapped: nothing to free.
    }
    if (!this.free.includes(slot)) this.free.push(slot);
    this.free.sort((a, b) => a - b);
  }

  /** The decoded fields of a slot. */
  slot(slot: number): SlotState {
    return decodeSlot(Buffer.from(this.tracee.memory.read(this.dataOf(slot), FIELDS_SIZE)));
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
    const index = Math.floor(Number(cur.rip - this.page.code) / CHUNK);
    const s = this.slot(index);
    if (s.image !== 0n && s.imageLen > 0)
      ptraceSetFpState(tid, Buffer.from(this.tracee.memory.read(s.image, s.imageLen)));
    ptraceSetSigmask(tid, s.mask);
    this.tracee.setRegs(tid, { ...cur, ...s.regs, orig_rax: BigInt.asUintN(64, -1n) } as Regs);
    this.release(index);
    return true;
  }
}

function paddedStub(): Buffer {
  const out = Buffer.alloc(CHUNK);
  out.set(stubCode());
  return out;
}

/**
 * The view of an existing page: its code checked against this build's stub
 * (another version's page is `EINVAL`), its free slots decided. A busy slot is
 * reclaimed when its owner thread is gone, or is stopped outside the stub with
 * its stack pointer not below the slot's saved one (so it is not inside an
 * injected call either).
 */
export function openInjectPage(tracee: Tracee, page: InjectPage): InjectSlots {
  const code = Buffer.from(tracee.memory.read(page.code, PAGE));
  const want = paddedStub();
  for (let i = 0; i < SLOT_COUNT; i++)
    if (!code.subarray(i * CHUNK, (i + 1) * CHUNK).equals(want))
      throw new XspliceError(
        "EINVAL",
        `process ${tracee.pid}: ${INJECT_NAME} holds code of another version`,
        {
          pid: tracee.pid,
          address: page.code,
        },
      );
  return new InjectSlots(tracee, page, reclaimable(tracee, page));
}

/** True when the page's code is still this build's stub (an exec or an unmap would have removed it). */
export function stillMapped(tracee: Tracee, page: InjectPage): boolean {
  try {
    return Buffer.from(tracee.memory.read(page.code, CHUNK)).equals(paddedStub());
  } catch {
    return false;
  }
}

/** A fresh page's view: every slot free. */
export function newInjectSlots(tracee: Tracee, page: InjectPage): InjectSlots {
  return new InjectSlots(tracee, page, [...Array(SLOT_COUNT).keys()]);
}

/** Every busy slot of `page`, decoded (a killed run's injections, or ones in flight). */
export function busySlots(tracee: Tracee, page: InjectPage): SlotState[] {
  const data = Buffer.from(tracee.memory.read(page.data, PAGE));
  const out: SlotState[] = [];
  for (let i = 0; i < SLOT_COUNT; i++) {
    const s = decodeSlot(data.subarray(i * CHUNK, i * CHUNK + FIELDS_SIZE));
    if (s.busy) out.push(s);
  }
  return out;
}

/** Live threads that own a busy slot of `page` (a killed run's injections, or ones in flight). */
export function busySlotOwners(tracee: Tracee, page: InjectPage): number[] {
  const data = Buffer.from(tracee.memory.read(page.data, PAGE));
  const live = new Set(listTids(tracee.pid));
  const out: number[] = [];
  for (let i = 0; i < SLOT_COUNT; i++) {
    const s = decodeSlot(data.subarray(i * CHUNK, i * CHUNK + FIELDS_SIZE));
    if (s.busy && live.has(s.owner)) out.push(s.owner);
  }
  return out;
}

function reclaimable(tracee: Tracee, page: InjectPage): number[] {
  const data = Buffer.from(tracee.memory.read(page.data, PAGE));
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
