/**
 * The libc calls xsplice needs to control a live process, as synchronous typed
 * wrappers. This is the only module that imports koffi (docs/architecture.md).
 *
 * Every call here runs synchronously on the calling (main) OS thread: ptrace is
 * tied to the thread that attached, and koffi's `.async` runs on a libuv worker
 * that the kernel does not know as the tracer (SPEC §12), so it is never used.
 * A failing call becomes an `XspliceError` naming the call, the tid and the errno.
 */
import { createRequire } from "node:module";
import { constants as osConstants } from "node:os";
import { decodeRegs, encodeRegs, FP_REGSET, REGS_SIZE, type Regs } from "../arch/host.ts";
import { errnoLabel, reportedErrno, XspliceError } from "../errors.ts";

// ptrace requests (<sys/ptrace.h>, x86-64).
/** `PTRACE_*` request numbers. */
export const PTRACE = {
  PEEKDATA: 2,
  PEEKUSER: 3,
  POKEDATA: 5,
  POKEUSER: 6,
  CONT: 7,
  SINGLESTEP: 9,
  GETREGS: 12,
  SETREGS: 13,
  DETACH: 17,
  SETOPTIONS: 0x4200,
  GETEVENTMSG: 0x4201,
  GETSIGINFO: 0x4202,
  GETREGSET: 0x4204,
  SETREGSET: 0x4205,
  SEIZE: 0x4206,
  INTERRUPT: 0x4207,
  LISTEN: 0x4208,
  GETSIGMASK: 0x420a,
  SETSIGMASK: 0x420b,
} as const;

/** `PTRACE_O_*` options for `PTRACE_SEIZE`. */
export const PTRACE_O = {
  TRACEFORK: 0x2,
  TRACECLONE: 0x8,
  TRACEEXEC: 0x10,
  EXITKILL: 0x100000,
} as const;

/** `PTRACE_EVENT_*`: the event number a stop reports in `status >> 16`. */
export const PTRACE_EVENT = {
  FORK: 1,
  VFORK: 2,
  CLONE: 3,
  EXEC: 4,
  VFORK_DONE: 5,
  EXIT: 6,
  SECCOMP: 7,
  STOP: 128,
} as const;

/** `waitpid` flags. */
export const WAIT = { WNOHANG: 1, __WALL: 0x40000000 } as const;

/** Signal numbers (x86-64 Linux) xsplice refers to by name. */
export const SIG = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGSYS: 31,
} as const;

/** The name of a signal number (`SIGSEGV`, `SIGRTMIN+2`), or `signal N`; never throws. */
export function signalName(sig: number): string {
  for (const [name, n] of Object.entries(SIG)) if (n === sig) return name;
  if (sig >= 34 && sig <= 64) return sig === 34 ? "SIGRTMIN" : `SIGRTMIN+${sig - 34}`;
  return `signal ${sig}`;
}

/**
 * Build the error for a failed libc call: `ptrace(PTRACE_SEIZE) tid 42: ESRCH`.
 * Exported so that the errno mapping can be tested without provoking each errno.
 */
export function callError(call: string, code: number, tid?: number, hint?: string): XspliceError {
  const where = tid === undefined ? {} : { tid };
  const who = tid === undefined ? "" : ` tid ${tid}`;
  return new XspliceError(
    reportedErrno(code),
    `${call}${who}: ${errnoLabel(code)}${hint ? ` (${hint})` : ""}`,
    where,
  );
}

/** koffi's module type, for the binding below (a type-only import loads nothing). */
type Koffi = typeof import("koffi");
type CFunction = ReturnType<ReturnType<Koffi["load"]>["func"]>;

/** The libc functions xsplice calls, bound once, on first use. */
interface LibcBinding {
  koffi: Koffi;
  ptraceInt: CFunction;
  ptraceBuf: CFunction;
  waitpid: CFunction;
  errnoLocation: CFunction;
  tgkill: CFunction;
  getpid: CFunction;
  sigqueue: CFunction;
  pvmReadv: CFunction;
  pvmWritev: CFunction;
  schedGetscheduler: CFunction;
  schedSetscheduler: CFunction;
  schedGetparam: CFunction;
  getpriority: CFunction;
  setpriority: CFunction;
  getrusage: CFunction;
  fanotifyInit: CFunction;
  fanotifyMark: CFunction;
  flock: CFunction;
}

let binding: LibcBinding | undefined;

/**
 * The libc binding, loaded on the first call that needs it: commands that never touch a
 * process (`inspect`, `build`, `sign`, `--help`) must not pay for loading a native addon
 * and libc, and importing this module must have no side effect (docs/architecture.md).
 * koffi is reached through `require` so that no bundler or loader evaluates it at import.
 */
function ffi(): LibcBinding {
  binding ??= bind();
  return binding;
}

function bind(): LibcBinding {
  const koffi = createRequire(import.meta.url)("koffi") as Koffi;
  const lib = koffi.load("libc.so.6");
  // glibc declares ptrace variadic; on x86-64 a fixed 4-argument prototype passes
  // the same registers, and the wrapper reads exactly these four. Two prototypes
  // of the same symbol: one whose `data` is an integer, one whose `data` points
  // into a Buffer (regs, siginfo, event message, sigmask, iovec).
  const iov = ["int", "void *", "uint64_t", "void *", "uint64_t", "uint64_t"];
  return {
    koffi,
    ptraceInt: lib.func("ptrace", "long", ["int", "int", "uint64_t", "uint64_t"]),
    ptraceBuf: lib.func("ptrace", "long", ["int", "int", "uint64_t", "void *"]),
    waitpid: lib.func("int waitpid(int pid, _Out_ int *status, int options)"),
    errnoLocation: lib.func("int *__errno_location(void)"),
    tgkill: lib.func("int tgkill(int tgid, int tid, int sig)"),
    getpid: lib.func("int getpid(void)"),
    // union sigval is 8 bytes of INTEGER class: passed exactly like a uint64_t.
    sigqueue: lib.func("sigqueue", "int", ["int", "int", "uint64_t"]),
    pvmReadv: lib.func("process_vm_readv", "int64_t", iov),
    pvmWritev: lib.func("process_vm_writev", "int64_t", iov),
    schedGetscheduler: lib.func("int sched_getscheduler(int pid)"),
    schedSetscheduler: lib.func("int sched_setscheduler(int pid, int policy, int *param)"),
    schedGetparam: lib.func("int sched_getparam(int pid, _Out_ int *param)"),
    getpriority: lib.func("int getpriority(int which, int who)"),
    setpriority: lib.func("int setpriority(int which, int who, int prio)"),
    getrusage: lib.func("getrusage", "int", ["int", "void *"]),
    fanotifyInit: lib.func("int fanotify_init(unsigned int flags, unsigned int event_f_flags)"),
    flock: lib.func("int flock(int fd, int operation)"),
    fanotifyMark: lib.func(
      "int fanotify_mark(int fd, unsigned int flags, uint64_t mask, int dirfd, const char *path)",
    ),
  };
}

/** errno of the last failed call on this thread (errno is thread-local, read through `__errno_location`). */
function errno(): number {
  return ffi().koffi.decode(ffi().errnoLocation(), "int") as number;
}

function setErrno(v: number): void {
  ffi().koffi.encode(ffi().errnoLocation(), "int", v);
}

const REQ_NAMES = Object.fromEntries(Object.entries(PTRACE).map(([k, v]) => [v, `PTRACE_${k}`]));

function ptraceCheck(req: number, tid: number, r: number | bigint): void {
  if (Number(r) === -1) throw callError(`ptrace(${REQ_NAMES[req] ?? req})`, errno(), tid);
}

function ptraceInt(req: number, tid: number, addr: bigint, data: bigint): void {
  ptraceCheck(req, tid, ffi().ptraceInt(req, tid, addr, data) as number);
}

function ptraceBuf(req: number, tid: number, addr: bigint, data: Buffer): void {
  ptraceCheck(req, tid, ffi().ptraceBuf(req, tid, addr, data) as number);
}

/** `PTRACE_SEIZE`: attach without stopping the thread (it keeps running until interrupted). */
export function ptraceSeize(tid: number, options: number): void {
  ptraceInt(PTRACE.SEIZE, tid, 0n, BigInt(options));
}

/** `PTRACE_SETOPTIONS`: replace the `PTRACE_O_*` options of a thread in a ptrace stop. */
export function ptraceSetOptions(tid: number, options: number): void {
  ptraceInt(PTRACE.SETOPTIONS, tid, 0n, BigInt(options));
}

/** `PTRACE_INTERRUPT`: ask a seized thread to stop; it reports `PTRACE_EVENT_STOP` (no signal is sent). */
export function ptraceInterrupt(tid: number): void {
  ptraceInt(PTRACE.INTERRUPT, tid, 0n, 0n);
}

/** `PTRACE_CONT`, delivering `sig` when the thread is in a signal-delivery-stop (0: none). */
export function ptraceCont(tid: number, sig = 0): void {
  ptraceInt(PTRACE.CONT, tid, 0n, BigInt(sig));
}

/** `PTRACE_LISTEN`: let a thread in group-stop wait for events without running (seized tracees only). */
export function ptraceListen(tid: number): void {
  ptraceInt(PTRACE.LISTEN, tid, 0n, 0n);
}

/** `PTRACE_SINGLESTEP`: execute one instruction, then stop with `SIGTRAP`. */
export function ptraceSingleStep(tid: number, sig = 0): void {
  ptraceInt(PTRACE.SINGLESTEP, tid, 0n, BigInt(sig));
}

/** `PTRACE_DETACH`, delivering `sig` (0: none). */
export function ptraceDetach(tid: number, sig = 0): void {
  ptraceInt(PTRACE.DETACH, tid, 0n, BigInt(sig));
}

/** `PTRACE_GETREGS`. */
export function ptraceGetRegs(tid: number): Regs {
  const buf = Buffer.alloc(REGS_SIZE);
  ptraceBuf(PTRACE.GETREGS, tid, 0n, buf);
  return decodeRegs(buf);
}

/**
 * `PTRACE_GETREGS` into `buf` (at least `REGS_SIZE` bytes, reusable), not decoded: for a
 * caller that needs a register or two of many threads (the safe stop's check reads rip and
 * rsp at `REG_OFFSET`), decoding all 27 into bigints was half the cost of the call.
 */
export function ptraceGetRegsInto(tid: number, buf: Buffer): void {
  if (buf.length < REGS_SIZE)
    throw new XspliceError("EINVAL", `register buffer of ${buf.length} bytes, need ${REGS_SIZE}`, { tid });
  ptraceBuf(PTRACE.GETREGS, tid, 0n, buf);
}

/** `PTRACE_SETREGS`. */
export function ptraceSetRegs(tid: number, regs: Regs): void {
  ptraceBuf(PTRACE.SETREGS, tid, 0n, encodeRegs(regs));
}

/**
 * `PTRACE_GETREGSET` of `NT_X86_XSTATE`: the thread's FPU/SSE/AVX state as
 * opaque bytes, for saving around an injected call that may clobber it.
 */
export function ptraceGetFpState(tid: number): Buffer {
  const data = Buffer.alloc(16384);
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(ffi().koffi.address(data), 0);
  iov.writeBigUInt64LE(BigInt(data.length), 8);
  ptraceBuf(PTRACE.GETREGSET, tid, BigInt(FP_REGSET), iov);
  // The kernel shrinks iov_len to the size of the state it wrote.
  return Buffer.from(data.subarray(0, Number(iov.readBigUInt64LE(8))));
}

/** `PTRACE_SETREGSET` of `NT_X86_XSTATE`, with bytes from `ptraceGetFpState`. */
export function ptraceSetFpState(tid: number, state: Buffer): void {
  const data = Buffer.from(state);
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(ffi().koffi.address(data), 0);
  iov.writeBigUInt64LE(BigInt(data.length), 8);
  ptraceBuf(PTRACE.SETREGSET, tid, BigInt(FP_REGSET), iov);
}

/** `PTRACE_GETSIGMASK`: the thread's blocked-signal mask (bit n-1 for signal n). */
export function ptraceGetSigmask(tid: number): bigint {
  const buf = Buffer.alloc(8);
  ptraceBuf(PTRACE.GETSIGMASK, tid, 8n, buf);
  return buf.readBigUInt64LE(0);
}

/** `PTRACE_SETSIGMASK`. */
export function ptraceSetSigmask(tid: number, mask: bigint): void {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64LE(BigInt.asUintN(64, mask), 0);
  ptraceBuf(PTRACE.SETSIGMASK, tid, 8n, buf);
}

/** The fields of `siginfo_t` that xsplice reads. */
export interface SigInfo {
  signo: number;
  errno: number;
  code: number;
  /** `si_pid` (signals sent by a process). */
  pid: number;
  /** `si_uid`. */
  uid: number;
  /** `si_addr` (faults): the same bytes as `si_pid`/`si_uid`. */
  addr: bigint;
  /** `si_value.sival_ptr` (`sigqueue`). */
  value: bigint;
}

/** `PTRACE_GETSIGINFO`: the siginfo of the signal that caused the current stop (`EINVAL` in group-stop). */
export function ptraceGetSiginfo(tid: number): SigInfo {
  const buf = Buffer.alloc(128);
  ptraceBuf(PTRACE.GETSIGINFO, tid, 0n, buf);
  return {
    signo: buf.readInt32LE(0),
    errno: buf.readInt32LE(4),
    code: buf.readInt32LE(8),
    pid: buf.readInt32LE(16),
    uid: buf.readUInt32LE(20),
    addr: buf.readBigUInt64LE(16),
    value: buf.readBigUInt64LE(24),
  };
}

/** `PTRACE_GETEVENTMSG`: e.g. the new thread's tid at a `PTRACE_EVENT_CLONE` stop. */
export function ptraceGetEventMsg(tid: number): bigint {
  const buf = Buffer.alloc(8);
  ptraceBuf(PTRACE.GETEVENTMSG, tid, 0n, buf);
  return buf.readBigUInt64LE(0);
}

/**
 * `PTRACE_PEEKDATA`: one 8-byte word at `addr`. glibc returns the word itself,
 * so -1 is ambiguous and errno is cleared first to tell a failure apart.
 */
export function ptracePeek(tid: number, addr: bigint): bigint {
  setErrno(0);
  const r = ffi().ptraceInt(PTRACE.PEEKDATA, tid, addr, 0n) as number | bigint;
  if (Number(r) === -1) {
    const e = errno();
    if (e !== 0) throw callError("ptrace(PTRACE_PEEKDATA)", e, tid, `address 0x${addr.toString(16)}`);
  }
  return BigInt.asUintN(64, BigInt(r));
}

/** `PTRACE_POKEDATA`: write one 8-byte word at `addr` (works on read-only and execute-only pages). */
export function ptracePoke(tid: number, addr: bigint, word: bigint): void {
  const r = ffi().ptraceInt(PTRACE.POKEDATA, tid, addr, BigInt.asUintN(64, word)) as number;
  if (Number(r) === -1)
    throw callError("ptrace(PTRACE_POKEDATA)", errno(), tid, `address 0x${addr.toString(16)}`);
}

/**
 * `PTRACE_PEEKUSER`: the word at `offset` of the thread's `struct user` (e.g. a
 * debug register). As with `ptracePeek`, errno is cleared first since -1 is a valid word.
 */
export function ptracePeekUser(tid: number, offset: bigint): bigint {
  setErrno(0);
  const r = ffi().ptraceInt(PTRACE.PEEKUSER, tid, offset, 0n) as number | bigint;
  if (Number(r) === -1) {
    const e = errno();
    if (e !== 0) throw callError("ptrace(PTRACE_PEEKUSER)", e, tid, `offset ${offset}`);
  }
  return BigInt.asUintN(64, BigInt(r));
}

/** `PTRACE_POKEUSER`: write the word at `offset` of the thread's `struct user` (the kernel checks debug registers). */
export function ptracePokeUser(tid: number, offset: bigint, word: bigint): void {
  const r = ffi().ptraceInt(PTRACE.POKEUSER, tid, offset, BigInt.asUintN(64, word)) as number;
  if (Number(r) === -1) throw callError("ptrace(PTRACE_POKEUSER)", errno(), tid, `offset ${offset}`);
}

/** How a waited-for thread changed state. */
export type StopKind =
  /** A signal is about to be delivered; the tracer passes it on (or not) with the next restart. */
  | "signal-delivery"
  /** Group-stop (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU) of a seized thread: `PTRACE_EVENT_STOP` with a stop signal. */
  | "group"
  /** `PTRACE_INTERRUPT` (or the first stop of an auto-attached thread): `PTRACE_EVENT_STOP` with SIGTRAP. */
  | "interrupt"
  /** Another `PTRACE_EVENT_*` stop (clone, exec, ...); `event` says which. */
  | "event";

/** A decoded `waitpid` status. */
export type WaitStatus =
  | { kind: "none"; tid: number }
  | { kind: "exited"; tid: number; code: number }
  | { kind: "signaled"; tid: number; sig: number; core: boolean }
  | { kind: "stopped"; tid: number; sig: number; event: number; stop: StopKind };

const STOP_SIGNALS = new Set<number>([SIG.SIGSTOP, SIG.SIGTSTP, SIG.SIGTTIN, SIG.SIGTTOU]);

/**
 * Decode a raw `waitpid` status. For seized tracees (all of xsplice's) a
 * group-stop reports `PTRACE_EVENT_STOP` in `status >> 16`, so it is told apart
 * from a signal-delivery-stop without `PTRACE_GETSIGINFO` (man 2 ptrace).
 */
export function decodeWaitStatus(tid: number, status: number): WaitStatus {
  const low = status & 0x7f;
  if (low === 0) return { kind: "exited", tid, code: (status >> 8) & 0xff };
  if ((status & 0xff) !== 0x7f) return { kind: "signaled", tid, sig: low, core: (status & 0x80) !== 0 };
  const sig = (status >> 8) & 0xff;
  const event = (status >>> 16) & 0xffff;
  let stop: StopKind;
  if (event === 0) stop = "signal-delivery";
  else if (event === PTRACE_EVENT.STOP) stop = STOP_SIGNALS.has(sig) ? "group" : "interrupt";
  else stop = "event";
  return { kind: "stopped", tid, sig, event, stop };
}

/**
 * `waitpid(tid, &status, __WALL | flags)` for one specific thread. Waiting on
 * -1 would reap events of unrelated children of this Node process (SPEC §12).
 * With `WNOHANG` and nothing to report, returns `{ kind: "none" }`; `EINTR` is retried.
 */
export function waitTid(tid: number, flags = 0): WaitStatus {
  const out = [0];
  for (;;) {
    const r = ffi().waitpid(tid, out, flags | WAIT.__WALL) as number;
    if (r === 0) return { kind: "none", tid };
    if (r === -1) {
      const e = errno();
      if (e === osConstants.errno.EINTR) continue;
      throw callError("waitpid", e, tid);
    }
    return decodeWaitStatus(tid, out[0] ?? 0);
  }
}

/** `tgkill(tgid, tid, sig)`: send a signal to one thread. */
export function tgkill(tgid: number, tid: number, sig: number): void {
  if ((ffi().tgkill(tgid, tid, sig) as number) === -1) throw callError("tgkill", errno(), tid);
}

/** `sigqueue(pid, sig, value)`: queue a signal with a value (real-time signals queue, never merge). */
export function sigqueue(pid: number, sig: number, value: bigint): void {
  if ((ffi().sigqueue(pid, sig, value) as number) === -1)
    throw callError("sigqueue", errno(), undefined, `pid ${pid}`);
}

/** glibc's `SIGRTMIN` (the kernel's 32 and 33 are taken by the threading library). */
export const SIGRTMIN = 34;

/** The pid of this (tracer) process, as the kernel sees it. */
export function getpid(): number {
  return ffi().getpid() as number;
}

function iovec(base: bigint, len: number): Buffer {
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(base, 0);
  iov.writeBigUInt64LE(BigInt(len), 8);
  return iov;
}

/**
 * `process_vm_readv` of `len` bytes at `addr` in `pid`. Returns the bytes read,
 * which can be fewer than `len` when the range runs into an unmapped page.
 * Honours page protections (unlike `/proc/PID/mem`), so it fails on
 * execute-only pages.
 */
export function processVmReadv(pid: number, addr: bigint, len: number): Uint8Array {
  const buf = Buffer.alloc(len);
  if (len === 0) return buf;
  const n = ffi().pvmReadv(pid, iovec(ffi().koffi.address(buf), len), 1n, iovec(addr, len), 1n, 0n) as
    | number
    | bigint;
  if (Number(n) === -1)
    throw callError("process_vm_readv", errno(), undefined, `pid ${pid} address 0x${addr.toString(16)}`);
  return buf.subarray(0, Number(n));
}

/** `process_vm_writev` of `bytes` at `addr` in `pid`; returns the count written. Fails on read-only pages. */
export function processVmWritev(pid: number, addr: bigint, bytes: Uint8Array): number {
  if (bytes.length === 0) return 0;
  const buf = Buffer.from(bytes);
  const n = ffi().pvmWritev(
    pid,
    iovec(ffi().koffi.address(buf), buf.length),
    1n,
    iovec(addr, buf.length),
    1n,
    0n,
  ) as number | bigint;
  if (Number(n) === -1)
    throw callError("process_vm_writev", errno(), undefined, `pid ${pid} address 0x${addr.toString(16)}`);
  return Number(n);
}

// ---- Scheduling of the tracer's own thread (src/process/priority.ts) ----------------------

/** `SCHED_*` policies (<sched.h>). */
export const SCHED = { OTHER: 0, FIFO: 1, RR: 2, BATCH: 3, IDLE: 5 } as const;

/** The calling thread's scheduling policy and priority (`sched_getscheduler`/`sched_getparam` of 0). */
export function schedGet(): { policy: number; priority: number } {
  const policy = ffi().schedGetscheduler(0) as number;
  if (policy === -1) throw callError("sched_getscheduler", errno());
  const out = [0];
  if ((ffi().schedGetparam(0, out) as number) === -1) throw callError("sched_getparam", errno());
  return { policy, priority: out[0] ?? 0 };
}

/** Set the calling thread's scheduling policy and priority (`sched_setscheduler(0, …)`). */
export function schedSet(policy: number, priority: number): void {
  if ((ffi().schedSetscheduler(0, policy, [priority]) as number) === -1)
    throw callError("sched_setscheduler", errno());
}

/** The calling thread's nice value (Linux keeps it per thread; `getpriority(PRIO_PROCESS, 0)`). */
export function niceGet(): number {
  setErrno(0);
  const v = ffi().getpriority(0, 0) as number;
  if (v === -1 && errno() !== 0) throw callError("getpriority", errno());
  return v;
}

/** Set the calling thread's nice value (`setpriority(PRIO_PROCESS, 0, n)`). */
export function niceSet(n: number): void {
  if ((ffi().setpriority(0, 0, n) as number) === -1) throw callError("setpriority", errno());
}

/**
 * CPU time (user + system, ms) of every child this process has waited for
 * (`getrusage(RUSAGE_CHILDREN)`): what a benchmark charges a command it ran.
 */
export function childrenCpuMs(): number {
  const RUSAGE_CHILDREN = -1;
  // struct rusage starts with ru_utime and ru_stime, two struct timeval {tv_sec, tv_usec}.
  const buf = Buffer.alloc(144);
  if ((ffi().getrusage(RUSAGE_CHILDREN, buf) as number) === -1) throw callError("getrusage", errno());
  const tv = (at: number) => Number(buf.readBigInt64LE(at)) * 1e3 + Number(buf.readBigInt64LE(at + 8)) / 1e3;
  return tv(0) + tv(16);
}

// fanotify: the agent's exec gate (src/agent/gate.ts).

/** fanotify constants (<linux/fanotify.h>). */
export const FAN = {
  CLOEXEC: 0x1,
  CLASS_CONTENT: 0x4,
  /** Events name the thread (`pid` is a tid), not the thread group. */
  REPORT_TID: 0x100,
  MARK_ADD: 0x1,
  MARK_REMOVE: 0x2,
  MARK_MOUNT: 0x10,
  MARK_FILESYSTEM: 0x100,
  OPEN_PERM: 0x10000n,
  OPEN_EXEC_PERM: 0x40000n,
  /** Every `*_PERM` event bit: only those events take a response. */
  PERM_EVENTS: 0x70000n,
  ALLOW: 0x1,
  DENY: 0x2,
  /** `struct fanotify_event_metadata` size and `FANOTIFY_METADATA_VERSION`. */
  EVENT_SIZE: 24,
  METADATA_VERSION: 3,
} as const;

/**
 * `flock(fd, LOCK_EX | LOCK_NB)`: true when this process now holds the lock,
 * false when another holds it (EWOULDBLOCK). The kernel drops it when the
 * last descriptor of the open file closes — at the holder's death, however it dies.
 */
export function tryLockExclusive(fd: number): boolean {
  const LOCK_EX = 2;
  const LOCK_NB = 4;
  if ((ffi().flock(fd, LOCK_EX | LOCK_NB) as number) === 0) return true;
  const e = errno();
  if (e === osConstants.errno.EWOULDBLOCK) return false;
  throw callError("flock", e);
}

/** `fanotify_init(flags, O_RDONLY | O_CLOEXEC)`: a descriptor for permission events. Needs CAP_SYS_ADMIN. */
export function fanotifyInit(flags: number): number {
  const fd = ffi().fanotifyInit(flags, 0o2000000) as number;
  if (fd === -1) throw callError("fanotify_init", errno());
  return fd;
}

/** `fanotify_mark(fd, flags, mask, AT_FDCWD, path)`. */
export function fanotifyMark(fd: number, flags: number, mask: bigint, path: string): void {
  if ((ffi().fanotifyMark(fd, flags, mask, -100, path) as number) === -1)
    throw callError(`fanotify_mark ${path}`, errno());
}
