/**
 * System calls run inside the target through `remoteSyscall` (the host's numbers),
 * for mapping payload memory near its target object (SPEC §2) and changing
 * its protection. A negative result becomes an `XspliceError` with the errno's
 * name and the call's arguments.
 */
import { MAP, SYS } from "../arch/host.ts";
import { XspliceError } from "../errors.ts";
import { hex } from "../hex.ts";
import { type RemoteOptions, remoteSyscall, syscallResult } from "./remote-call.ts";
import type { Tracee } from "./threads.ts";

/** `PROT_*`. */
export const PROT = { NONE: 0, READ: 1, WRITE: 2, EXEC: 4 } as const;

/** `MFD_CLOEXEC`. */
export const MFD_CLOEXEC = 1;

/** Run a system call and turn a result in [-4095, -1] into an error naming the call. */
export function checkedSyscall(
  tracee: Tracee,
  tid: number,
  nr: number,
  args: bigint[],
  what: string,
  opts?: RemoteOptions,
): bigint {
  return syscallResult(tracee, tid, remoteSyscall(tracee, tid, nr, args, opts), what);
}

/** Options of `remoteMmap`. */
export interface MmapArgs {
  /** Address hint, or the exact address with `MAP.FIXED_NOREPLACE`. 0: let the kernel choose. */
  addr?: bigint;
  length: bigint | number;
  prot: number;
  /** Default `MAP.PRIVATE | MAP.ANONYMOUS`. */
  flags?: number;
  /** Default -1 (anonymous). */
  fd?: number;
  offset?: bigint;
}

/** `mmap` in the target; returns the address mapped. */
export function remoteMmap(tracee: Tracee, tid: number, a: MmapArgs): bigint {
  const flags = a.flags ?? MAP.PRIVATE | MAP.ANONYMOUS;
  const args = [
    a.addr ?? 0n,
    BigInt(a.length),
    BigInt(a.prot),
    BigInt(flags),
    BigInt(a.fd ?? -1),
    a.offset ?? 0n,
  ];
  return checkedSyscall(
    tracee,
    tid,
    SYS.mmap,
    args,
    `mmap(${hex(args[0]!)}, ${a.length}, prot ${a.prot}, flags ${hex(BigInt(flags))})`,
  );
}

/** `munmap` in the target. */
export function remoteMunmap(tracee: Tracee, tid: number, addr: bigint, length: bigint | number): void {
  checkedSyscall(tracee, tid, SYS.munmap, [addr, BigInt(length)], `munmap(${hex(addr)}, ${length})`);
}

/** `mprotect` in the target. */
export function remoteMprotect(
  tracee: Tracee,
  tid: number,
  addr: bigint,
  length: bigint | number,
  prot: number,
): void {
  checkedSyscall(
    tracee,
    tid,
    SYS.mprotect,
    [addr, BigInt(length), BigInt(prot)],
    `mprotect(${hex(addr)}, ${length}, ${prot})`,
  );
}

/**
 * `memfd_create(name, flags)` in the target; returns the new fd. The name is
 * written to the thread's stack below the red zone (free memory by the ABI)
 * for the duration of the call.
 */
export function remoteMemfdCreate(tracee: Tracee, tid: number, name: string, flags = MFD_CLOEXEC): number {
  const bytes = Buffer.from(`${name}\0`, "utf8");
  if (bytes.length > 249) throw new XspliceError("EINVAL", `memfd name too long: ${name}`, { tid });
  const rsp = tracee.regs(tid).rsp;
  const at = (rsp - 128n - 512n - BigInt(bytes.length)) & ~15n;
  tracee.memory.write(at, bytes);
  return Number(
    checkedSyscall(tracee, tid, SYS.memfd_create, [at, BigInt(flags)], `memfd_create("${name}")`),
  );
}

export { MAP, SYS } from "../arch/host.ts";
