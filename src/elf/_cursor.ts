/**
 * A bounds-checked little-endian reader over DWARF-style byte streams, shared
 * by the `.eh_frame` CFI reader (`eh-frame.ts`) and the `DW_AT_producer`
 * reader (`dwarf-producer.ts`). Every overrun, over-long LEB128 or value too
 * large for a `number` is an `EINVAL` {@link elfError} naming the offset and
 * the stream (`what`): eh-frame lets it leave the module as is, dwarf-producer
 * turns it into a "no answer" `reason` (its public functions never throw).
 */

import type { XspliceError } from "../errors.ts";
import { elfError } from "../errors.ts";

const UTF8 = new TextDecoder();

/** A read position in `bytes[.., end)`; `pos` may be moved by the caller (it is checked on the next read). */
export class Cursor {
  private readonly view: DataView;

  /**
   * @param bytes the stream
   * @param pos where reading starts
   * @param what names the stream in error messages (".eh_frame CIE", ".debug_info"...)
   * @param end one past the last byte that may be read (default: the end of `bytes`)
   */
  constructor(
    readonly bytes: Uint8Array,
    public pos: number,
    readonly what: string,
    readonly end = bytes.length,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** The `EINVAL` error for `problem` at `offset` (default: the current position). */
  fail(problem: string, value?: number | bigint, offset = this.pos): XspliceError {
    return elfError("EINVAL", offset, `${this.what}: ${problem}`, value);
  }

  /** Throw unless `n` more bytes can be read. */
  need(n: number): void {
    if (n < 0 || this.pos < 0 || this.pos + n > this.end) throw this.fail(`truncated, ${n} byte(s) needed`);
  }

  /** Step over `n` bytes. */
  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }

  private take<T>(n: number, read: (at: number) => T): T {
    this.need(n);
    const v = read(this.pos);
    this.pos += n;
    return v;
  }

  /** One unsigned byte. */
  u8(): number {
    return this.take(1, (at) => this.view.getUint8(at));
  }
  /** An unsigned 16-bit value. */
  u16(): number {
    return this.take(2, (at) => this.view.getUint16(at, true));
  }
  /** An unsigned 32-bit value. */
  u32(): number {
    return this.take(4, (at) => this.view.getUint32(at, true));
  }
  /** A signed 32-bit value. */
  s32(): number {
    return this.take(4, (at) => this.view.getInt32(at, true));
  }
  /** An unsigned 64-bit value. */
  u64(): bigint {
    return this.take(8, (at) => this.view.getBigUint64(at, true));
  }

  /** An unsigned LEB128 (DWARF 5 §7.6); more than 10 bytes of a 64-bit value is an error. */
  uleb(): bigint {
    return this.leb(false);
  }
  /** A signed LEB128 (DWARF 5 §7.6). */
  sleb(): bigint {
    return this.leb(true);
  }
  private leb(signed: boolean): bigint {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = this.u8();
      result |= BigInt(b & 0x7f) << shift;
      shift += 7n;
      if ((b & 0x80) === 0) {
        if (signed && b & 0x40) result -= 1n << shift;
        return result;
      }
      if (shift > 70n) throw this.fail("LEB128 too long");
    }
  }
  /** An unsigned LEB128 as a `number`; an error naming `what` when it is not a safe integer. */
  ulebNumber(what: string): number {
    return this.small(this.uleb(), what);
  }
  /** Step over a LEB128 of any length, signed or not, without decoding it. */
  skipLeb(): void {
    while ((this.u8() & 0x80) !== 0);
  }

  /** `v` as a `number`; an error naming `what` when it is not a safe integer. */
  small(v: bigint, what: string): number {
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw this.fail(what, v);
    return Number(v);
  }

  /** A NUL-terminated UTF-8 string; the cursor ends after the NUL. */
  cstring(): string {
    this.need(0); // a position before the stream
    const start = this.pos;
    let i = start;
    while (i < this.end && this.bytes[i] !== 0) i++;
    this.pos = i;
    this.need(1); // no NUL before the end: truncated at the end
    this.pos = i + 1;
    return UTF8.decode(this.bytes.subarray(start, i));
  }
}
