/**
 * Shared bounds checks for the reader. Every check runs before a field is used
 * as an offset, a count or an index (Go `debug/elf` style), so no DataView or
 * subarray call can throw a RangeError on a malformed file.
 */
import { type ErrnoName, elfError, type XspliceError } from "../errors.ts";

/** An error about a field of a section: names the section and the field's file offset. */
export function sectionError(
  errno: ErrnoName,
  offset: number,
  section: { index: number; name: string },
  what: string,
  value?: number | bigint | string,
): XspliceError {
  const label = section.name ? `section [${section.index}] ${section.name}` : `section [${section.index}]`;
  const err = elfError(errno, offset, `${label}: ${what}`, value);
  err.where.section = section.name || `[${section.index}]`;
  return err;
}

/**
 * A u64 file offset or size as a `number`; EINVAL when it cannot be exact
 * (above 2^53) — no file xsplice reads comes near that.
 */
export function toSafe(value: bigint, fieldOffset: number, what: string): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER))
    throw elfError("EINVAL", fieldOffset, `${what} too large`, value);
  return Number(value);
}

/** True when [start, start+size) lies inside a buffer of `length` bytes. */
export function inBounds(start: number, size: number, length: number): boolean {
  return start >= 0 && size >= 0 && start <= length && size <= length - start;
}
