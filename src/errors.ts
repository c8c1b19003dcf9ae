/**
 * The one error type of xsplice. Every failure that reaches a caller is an
 * `XspliceError` carrying a Linux errno name (SPEC §2, §5, §10) and, where it
 * is known, the place it concerns: a file offset, a section, a symbol, a thread.
 */
import { constants as osConstants } from "node:os";

/** Linux errno numbers (x86-64 and arm64 agree) for every errno the SPEC names. */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENOEXEC: 8,
  ECHILD: 10,
  EAGAIN: 11,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EINVAL: 22,
  ENOSPC: 28,
  ERANGE: 34,
  ENOSYS: 38,
  ENODATA: 61,
  EOVERFLOW: 75,
  EOPNOTSUPP: 95,
  ETIMEDOUT: 110,
  ECANCELED: 125,
  EKEYREJECTED: 129,
} as const;

/** An errno name that xsplice may report. */
export type ErrnoName = keyof typeof ERRNO;

/** Where an error happened; every field optional, filled in by whoever knows it. */
export interface ErrorLocation {
  /** Byte offset in the payload or object file. */
  offset?: number;
  /** Section name (or `[index]` when the name is not readable). */
  section?: string;
  /** Symbol name. */
  symbol?: string;
  /** Thread id in the target process. */
  tid?: number;
  /** Process id of the target. */
  pid?: number;
  /** Address in the target process. */
  address?: bigint;
  /**
   * Why an `EBUSY` of an action: `"stop"` — the threads could not all be
   * stopped in time (a busy host; worth retrying soon), `"stack"` — a function
   * to be patched is executing or on a stack (SPEC §6).
   */
  busy?: "stop" | "stack";
}

/** A failure with an errno name, a one-line message, and where it happened. */
export class XspliceError extends Error {
  override readonly name = "XspliceError";
  readonly errno: ErrnoName;
  readonly where: ErrorLocation;

  constructor(errno: ErrnoName, message: string, where: ErrorLocation = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.errno = errno;
    this.where = where;
  }

  /** The positive errno number, e.g. 22 for EINVAL. */
  get code(): number {
    return ERRNO[this.errno];
  }

  /** The negative errno, as stored in a payload's `rc` (SPEC §5). */
  get rc(): number {
    return -ERRNO[this.errno];
  }
}

/** Build an `XspliceError` that names the offending offset and value, Go `debug/elf` style. */
export function elfError(
  errno: ErrnoName,
  offset: number,
  what: string,
  value?: number | bigint | string,
): XspliceError {
  const shown =
    value === undefined ? "" : ` (${typeof value === "string" ? value : `0x${value.toString(16)}`})`;
  return new XspliceError(errno, `${what}${shown} at offset 0x${offset.toString(16)}`, { offset });
}

/**
 * The one mapping from errno numbers to names. `errnoName`: xsplice's name
 * for a number (either sign), undefined outside its table; `reportedErrno`:
 * what xsplice reports for a raw errno of a system call (`EIO` outside the
 * table); `errnoLabel`: the kernel's name of any errno, for messages;
 * `rcLabel`: a payload's rc as GET and LIST print it (`0`, `EAGAIN`).
 */
export function errnoName(code: number): ErrnoName | undefined {
  const n = Math.abs(code);
  for (const [name, value] of Object.entries(ERRNO)) if (value === n) return name as ErrnoName;
  return undefined;
}

/** The `ErrnoName` xsplice reports for a raw errno; errnos outside the SPEC's table become `EIO`. */
export function reportedErrno(code: number): ErrnoName {
  return errnoName(code) ?? "EIO";
}

/** The kernel's name of an errno number (`ESRCH`), from Node's table; `errno N` when unknown. */
export function errnoLabel(code: number): string {
  for (const [name, n] of Object.entries(osConstants.errno)) if (n === code) return name;
  return `errno ${code}`;
}

/** A payload's rc for display: `0`, or the errno's name (`-11` → `EAGAIN`), or the number. */
export function rcLabel(rc: number): string {
  if (rc === 0) return "0";
  return (rc < 0 ? errnoName(rc) : undefined) ?? String(rc);
}

/** True for the errnos that SPEC §10 calls worth retrying (exit status 2). */
export function isRetryable(errno: ErrnoName): boolean {
  return errno === "EAGAIN" || errno === "EBUSY";
}
