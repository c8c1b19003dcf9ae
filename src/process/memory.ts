/**
 * Reading and writing the memory of a live process through `/proc/PID/mem`.
 *
 * `/proc/PID/mem` is used rather than `process_vm_readv/writev` because the
 * kernel forces accesses through it (FOLL_FORCE): writes land on read-only and
 * execute-only code pages, which is what patching needs (SPEC §12). The caller
 * needs ptrace access to the process. When the file cannot be used, a word-wise
 * `PTRACE_PEEKDATA`/`PTRACE_POKEDATA` fallback works on a stopped tracee.
 */
import { closeSync, openSync, readSync, writeSync } from "node:fs";
import { XspliceError } from "../errors.ts";
import { ptracePeek, ptracePoke } from "./libc.ts";

/** Options for memory access. */
export interface MemoryOptions {
  /**
   * A stopped, traced thread of the process: when given and `/proc/PID/mem`
   * fails, the access is retried word by word with ptrace through this thread.
   */
  tid?: number;
}

function hex(v: bigint): string {
  return `0x${v.toString(16)}`;
}

function checkRange(pid: number, addr: bigint, len: number): void {
  if (!Number.isSafeInteger(len) || len < 0)
    throw new XspliceError("EINVAL", `bad length ${len} at ${hex(addr)}`, { pid, address: addr });
  // User space ends below 2^47 on x86-64 (2^48 with LA57... still far below 2^53), so a
  // file position as a double is exact; anything above is not user memory.
  if (addr < 0n || addr + BigInt(len) > BigInt(Number.MAX_SAFE_INTEGER))
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
    { cause },
  );
}

function openMem(pid: number, flags: "r" | "r+"): number {
  try {
    return openSync(`/proc/${pid}/mem`, flags);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === "ENOENT") throw new XspliceError("ESRCH", `no process ${pid}`, { pid }, { cause: err });
    if (code === "EACCES" || code === "EPERM")
      throw new XspliceError("EPERM", `not permitted to open /proc/${pid}/mem`, { pid }, { cause: err });
    throw new XspliceError("EIO", `cannot open /proc/${pid}/mem: ${code}`, { pid }, { cause: err });
  }
}

/** Read `len` bytes at `addr`. Unmapped memory: `EFAULT` naming address and length. */
export function readMemory(pid: number, addr: bigint, len: number, opts: MemoryOptions = {}): Uint8Array {
  checkRange(pid, addr, len);
  const out = new Uint8Array(len);
  if (len === 0) return out;
  let fd: number | undefined;
  try {
    fd = openMem(pid, "r");
    let done = 0;
    while (done < len) {
      const n = readSync(fd, out, done, len - done, Number(addr) + done);
      if (n <= 0) throw fault(pid, addr + BigInt(done), len - done, "read");
      done += n;
    }
    return out;
  } catch (err) {
    if (opts.tid !== undefined && !(err instanceof XspliceError && err.errno === "ESRCH"))
      return peekBytes(pid, opts.tid, addr, len);
    if (err instanceof XspliceError) throw err;
    throw fault(pid, addr, len, "read", err);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Write `bytes` at `addr`, also on read-only and execute-only pages. Unmapped memory: `EFAULT`. */
export function writeMemory(pid: number, addr: bigint, bytes: Uint8Array, opts: MemoryOptions = {}): void {
  checkRange(pid, addr, bytes.length);
  if (bytes.length === 0) return;
  let fd: number | undefined;
  try {
    fd = openMem(pid, "r+");
    let done = 0;
    while (done < bytes.length) {
      const n = writeSync(fd, bytes, done, bytes.length - done, Number(addr) + done);
      if (n <= 0) throw fault(pid, addr + BigInt(done), bytes.length - done, "write");
      done += n;
    }
  } catch (err) {
    if (opts.tid !== undefined && !(err instanceof XspliceError && err.errno === "ESRCH")) {
      pokeBytes(pid, opts.tid, addr, bytes);
      return;
    }
    if (err instanceof XspliceError) throw err;
    throw fault(pid, addr, bytes.length, "write", err);
  } finally {
    if (fd !== undefined) closeSync(fd);
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
