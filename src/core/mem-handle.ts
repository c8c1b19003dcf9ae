/**
 * One open `/proc/PID/mem` for the span of a safe stop: the stack reads of the
 * safety check and the read/write/read-back of every patched span go through
 * one descriptor instead of an open and close each, which keeps the stop
 * window short (SPEC §6: only the writes happen while stopped). Any failure
 * falls back to `readMemory`/`writeMemory`, which report it properly (and try
 * ptrace words through a stopped thread).
 *
 * `readView` reads into a scratch buffer that is reused from call to call: a
 * fresh zero-filled 4–8 KiB array per thread stack doubled the cost of the
 * read (measured: 3.2 µs with reuse, 6.8 µs with allocation, for 4.5 KiB).
 */
import { closeSync, openSync, readSync, writeSync } from "node:fs";
import { readMemory, writeMemory } from "../process/memory.ts";

const MAX_OFFSET = BigInt(Number.MAX_SAFE_INTEGER);

/** Memory of one process through a descriptor kept open until `close()`. */
export class MemHandle {
  private fd: number | undefined;
  private scratch = new Uint8Array(16 << 10);
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

  private fallbackRead(addr: bigint, len: number): Uint8Array {
    return readMemory(this.pid, addr, len, this.tid === undefined ? {} : { tid: this.tid });
  }

  /** Read `len` bytes at `addr` into a new array (may be fewer only when the fallback says so). */
  read(addr: bigint, len: number): Uint8Array {
    if (this.fd !== undefined && len > 0 && addr + BigInt(len) <= MAX_OFFSET) {
      const out = new Uint8Array(len);
      try {
        if (readSync(this.fd, out, 0, len, Number(addr)) === len) return out;
      } catch {
        // fall through to the reporting path
      }
    }
    return this.fallbackRead(addr, len);
  }

  /**
   * Read up to `max` bytes at `addr` into a new array with one `pread`: fewer when the
   * range runs into unmapped memory, none when the descriptor cannot read there. Never
   * throws; callers fall back to `read` for what they need and did not get.
   */
  readSome(addr: bigint, max: number): Uint8Array {
    if (this.fd === undefined || max <= 0 || addr + BigInt(max) > MAX_OFFSET) return new Uint8Array(0);
    const out = new Uint8Array(max);
    try {
      return out.subarray(0, readSync(this.fd, out, 0, max, Number(addr)));
    } catch {
      return new Uint8Array(0);
    }
  }

  /**
   * Read `len` bytes at `addr` into the scratch buffer and return a view of
   * them, valid until the next `readView` (may be fewer bytes only when the
   * fallback says so). The view starts 8-byte aligned in its buffer.
   */
  readView(addr: bigint, len: number): Uint8Array {
    if (this.fd !== undefined && len > 0 && addr + BigInt(len) <= MAX_OFFSET) {
      if (this.scratch.length < len) this.scratch = new Uint8Array(Math.max(len, this.scratch.length * 2));
      try {
        if (readSync(this.fd, this.scratch, 0, len, Number(addr)) === len)
          return this.scratch.subarray(0, len);
      } catch {
        // fall through to the reporting path
      }
    }
    const got = this.fallbackRead(addr, len);
    if (this.scratch.length < got.length) this.scratch = new Uint8Array(got.length);
    this.scratch.set(got);
    return this.scratch.subarray(0, got.length);
  }

  /** Write `bytes` at `addr`, also on read-only and execute-only pages. */
  write(addr: bigint, bytes: Uint8Array): void {
    if (this.fd !== undefined && bytes.length > 0 && addr + BigInt(bytes.length) <= MAX_OFFSET) {
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
