/**
 * Reading and writing the memory of a live process through `/proc/PID/mem`.
 *
 * `/proc/PID/mem` is used rather than `process_vm_readv/writev` because the
 * kernel forces accesses through it (FOLL_FORCE): writes land on read-only and
 * execute-only code pages, which is what patching needs (SPEC §12).
 *
 * There is one way to reach a process's memory: a `ProcessMemory`, one
 * descriptor held for as long as the caller works on the process. Two facts
 * make the descriptor the right unit:
 * - it is bound to the address space it was opened on. After an `execve` the
 *   old address space is gone and every access through the descriptor fails;
 *   it never silently reaches the new program (a fresh `open` would). A
 *   `Tracee` opens its descriptor *before* it seizes, so whatever image it
 *   held is the only one its writes can ever touch (SPEC §8: after exec the
 *   process is new).
 * - an open, pread and close per access cost ~12 µs each; the safe stop and
 *   the loader make hundreds of accesses.
 * When the file cannot be opened at all, `PTRACE_PEEKDATA`/`PTRACE_POKEDATA`
 * through a stopped thread are the fallback (the same kernel path, word by
 * word). A descriptor that is open never falls back: ptrace reaches nothing
 * the descriptor cannot, and after an exec it would reach the new program.
 */
import { closeSync, openSync, readSync, writeSync } from "node:fs";
import { XspliceError } from "../errors.ts";
import { hex } from "../hex.ts";
import { ptracePeek, ptracePoke } from "./libc.ts";

/** Options of a `ProcessMemory`. */
export interface MemoryOptions {
  /**
   * A stopped, traced thread of the process (or a function giving one, or
   * undefined when none is stopped now): used word by word with ptrace when
   * `/proc/PID/mem` cannot be opened.
   */
  tid?: number | (() => number | undefined);
  /** Open read-only (default read-write). */
  readOnly?: boolean;
}

const MAX_OFFSET = BigInt(Number.MAX_SAFE_INTEGER);

function checkRange(pid: number, addr: bigint, len: number): void {
  if (!Number.isSafeInteger(len) || len < 0)
    throw new XspliceError("EINVAL", `bad length ${len} at ${hex(addr)}`, { pid, address: addr });
  // User space ends below 2^47 on x86-64 (2^56 with LA57, still below 2^53 as a file
  // position? no: but far below MAX_SAFE_INTEGER's 2^53), so a position as a double is exact.
  if (addr < 0n || addr + BigInt(len) > MAX_OFFSET)
    throw new XspliceError("EFAULT", `range ${hex(addr)}+${len} is outside the address space`, {
      pid,
      address: addr,
    });
}

function fault(pid: number, addr: bigint, len: number, what: string, cause?: unknown): XspliceError {
  return new XspliceError(
    "EFAULT",
    `cannot ${what} ${len} byte(s) at ${hex(addr)} in process ${pid}`,
    { pid, address: addr },
    cause === undefined ? undefined : { cause },
  );
}

function openMem(pid: number, readOnly: boolean): number {
  try {
    return openSync(`/proc/${pid}/mem`, readOnly ? "r" : "r+");
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "ENOENT") throw new XspliceError("ESRCH", `no process ${pid}`, { pid }, { cause: err });
    if (code === "EACCES" || code === "EPERM")
      throw new XspliceError(
        "EPERM",
        `not permitted to open /proc/${pid}/mem: run as root, or as the process owner with kernel.yama.ptrace_scope <= 1 (or with CAP_SYS_PTRACE)`,
        { pid },
        { cause: err },
      );
    throw new XspliceError("EIO", `cannot open /proc/${pid}/mem: ${code}`, { pid }, { cause: err });
  }
}

/** The memory of one process through a descriptor held until `close()`. */
export class ProcessMemory {
  readonly pid: number;
  private fd: number | undefined;
  private readonly tid: () => number | undefined;
  /** Reused by `readView`: a fresh 4–8 KiB array per stack read doubled its cost (3.2 → 6.8 µs). */
  private scratch = new Uint8Array(16 << 10);
  private closed = false;

  /**
   * Open `/proc/PID/mem`. Without a fallback thread, failing to open it is
   * the error (`ESRCH`, `EPERM` with a hint); with one, accesses go word by
   * word through ptrace instead.
   */
  constructor(pid: number, opts: MemoryOptions = {}) {
    this.pid = pid;
    const t = opts.tid;
    this.tid = typeof t === "function" ? t : () => t;
    try {
      this.fd = openMem(pid, opts.readOnly === true);
    } catch (err) {
      if (opts.tid === undefined || (err instanceof XspliceError && err.errno === "ESRCH")) throw err;
      this.fd = undefined;
    }
  }

  private fallbackTid(addr: bigint, len: number, what: string): number {
    const tid = this.closed ? undefined : this.tid();
    if (tid === undefined) throw fault(this.pid, addr, len, what);
    return tid;
  }

  /** Read exactly `len` bytes at `addr` into `out` (from offset 0), or `EFAULT`. */
  private readInto(addr: bigint, len: number, out: Uint8Array): void {
    checkRange(this.pid, addr, len);
    if (len === 0) return;
    if (this.fd === undefined) {
      out.set(peekBytes(this.pid, this.fallbackTid(addr, len, "read"), addr, len));
      return;
    }
    let done = 0;
    try {
      while (done < len) {
        const n = readSync(this.fd, out, done, len - done, Number(addr) + done);
        if (n <= 0) break;
        done += n;
      }
    } catch (err) {
      throw fault(this.pid, addr + BigInt(done), len - done, "read", err);
    }
    if (done < len) throw fault(this.pid, addr + BigInt(done), len - done, "read");
  }

  /** Read `len` bytes at `addr` into a new array. Unmapped memory: `EFAULT` naming the address. */
  read(addr: bigint, len: number): Uint8Array {
    const out = new Uint8Array(len);
    this.readInto(addr, len, out);
    return out;
  }

  /**
   * Read up to `max` bytes at `addr` with one `pread`: fewer when the range runs into
   * unmapped memory, none when nothing there can be read. Never throws.
   */
  readSome(addr: bigint, max: number): Uint8Array {
    if (this.fd === undefined || max <= 0 || addr < 0n || addr + BigInt(max) > MAX_OFFSET)
      return new Uint8Array(0);
    const out = new Uint8Array(max);
    try {
      return out.subarray(0, readSync(this.fd, out, 0, max, Number(addr)));
    } catch {
      return new Uint8Array(0);
    }
  }

  /**
   * Read `len` bytes at `addr` into a scratch buffer and return a view of them,
   * valid until the next `readView`. The view starts 8-byte aligned.
   */
  readView(addr: bigint, len: number): Uint8Array {
    if (this.scratch.length < len) this.scratch = new Uint8Array(Math.max(len, this.scratch.length * 2));
    const view = this.scratch.subarray(0, len);
    this.readInto(addr, len, view);
    return view;
  }

  /** Write `bytes` at `addr`, also on read-only and execute-only pages. Unmapped memory: `EFAULT`. */
  write(addr: bigint, bytes: Uint8Array): void {
    checkRange(this.pid, addr, bytes.length);
    if (bytes.length === 0) return;
    if (this.fd === undefined) {
      pokeBytes(this.pid, this.fallbackTid(addr, bytes.length, "write"), addr, bytes);
      return;
    }
    let done = 0;
    try {
      while (done < bytes.length) {
        const n = writeSync(this.fd, bytes, done, bytes.length - done, Number(addr) + done);
        if (n <= 0) break;
        done += n;
      }
    } catch (err) {
      throw fault(this.pid, addr + BigInt(done), bytes.length - done, "write", err);
    }
    if (done < bytes.length) throw fault(this.pid, addr + BigInt(done), bytes.length - done, "write");
  }

  /** Release the descriptor; later accesses fail. Safe to call twice. */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    this.closed = true;
  }
}

/**
 * Read `len` bytes at `addr` with a descriptor of its own: for a look at a
 * process that is not held (GET, LIST, planning before the seize). Work on a
 * held process goes through its `Tracee`'s memory.
 */
export function readMemory(pid: number, addr: bigint, len: number): Uint8Array {
  const mem = new ProcessMemory(pid, { readOnly: true });
  try {
    return mem.read(addr, len);
  } finally {
    mem.close();
  }
}

/** Write `bytes` at `addr` with a descriptor of its own (a process that is not held; tests). */
export function writeMemory(pid: number, addr: bigint, bytes: Uint8Array): void {
  const mem = new ProcessMemory(pid);
  try {
    mem.write(addr, bytes);
  } finally {
    mem.close();
  }
}

/** Read through `PTRACE_PEEKDATA`, one aligned word at a time. */
export function peekBytes(pid: number, tid: number, addr: bigint, len: number): Uint8Array {
  checkRange(pid, addr, len);
  const out = new Uint8Array(len);
  const word = Buffer.alloc(8);
  const first = addr & ~7n;
  try {
    for (let at = first; at < addr + BigInt(len); at += 8n) {
      word.writeBigUInt64LE(ptracePeek(tid, at));
      for (let i = 0; i < 8; i++) {
        const off = Number(at - addr) + i;
        if (off >= 0 && off < len) out[off] = word[i]!;
      }
    }
  } catch (err) {
    throw fault(pid, addr, len, "read", err);
  }
  return out;
}

/** Write through `PTRACE_PEEKDATA`/`PTRACE_POKEDATA`, merging partial words at either end. */
export function pokeBytes(pid: number, tid: number, addr: bigint, bytes: Uint8Array): void {
  checkRange(pid, addr, bytes.length);
  const word = Buffer.alloc(8);
  const first = addr & ~7n;
  try {
    for (let at = first; at < addr + BigInt(bytes.length); at += 8n) {
      const partial = at < addr || at + 8n > addr + BigInt(bytes.length);
      if (partial) word.writeBigUInt64LE(ptracePeek(tid, at));
      for (let i = 0; i < 8; i++) {
        const off = Number(at - addr) + i;
        if (off >= 0 && off < bytes.length) word[i] = bytes[off]!;
      }
      ptracePoke(tid, at, word.readBigUInt64LE());
    }
  } catch (err) {
    throw fault(pid, addr, bytes.length, "write", err);
  }
}
