/**
 * One open `/proc/PID/mem` for the span of a safe stop: the stack reads of the
 * safety check and the read/write/read-back of every patched function go
 * through one descriptor instead of an open and close each, which keeps the
 * stop window short (SPEC §6: only the writes happen while stopped). Any
 * failure falls back to `readMemory`/`writeMemory`, which report it properly
 * (and try ptrace words through a stopped thread).
 */
import { closeSync, openSync, readSync, writeSync } from "node:fs";
import { readMemory, writeMemory } from "../process/memory.ts";

/** Memory of one process through a descriptor kept open until `close()`. */
export class MemHandle {
  private fd: number | undefined;
  constructor(
    readonly pid: number,
    readonly tid?: number,
  ) {
    try {
      this.fd = openSync(`/proc/${pid}/mem`, "r+");
    } catch {
      this.fd = undefined;
    }
  }

  /** Read `len` bytes at `addr` (may be fewer only when the fallback says so). */
  read(addr: bigint, len: number): Uint8Array {
    if (this.fd !== undefined && len > 0 && addr + BigInt(len) <= BigInt(Number.MAX_SAFE_INTEGER)) {
      const out = new Uint8Array(len);
      try {
        if (readSync(this.fd, out, 0, len, Number(addr)) === len) return out;
      } catch {
        // fall through to the reporting path
      }
    }
    return readMemory(this.pid, addr, len, this.tid === undefined ? {} : { tid: this.tid });
  }

  /** Write `bytes` at `addr`, also on read-only and execute-only pages. */
  write(addr: bigint, bytes: Uint8Array): void {
    if (
      this.fd !== undefined &&
      bytes.length > 0 &&
      addr + BigInt(bytes.length) <= BigInt(Number.MAX_SAFE_INTEGER)
    ) {
      try {
        if (writeSync(this.fd, bytes, 0, bytes.length, Number(addr)) === bytes.length) return;
      } catch {
        // fall through
      }
    }
    writeMemory(this.pid, addr, bytes, this.tid === undefined ? {} : { tid: this.tid });
  }

  /** Release the descriptor. Safe to call twice. */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
