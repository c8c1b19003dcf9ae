/**
 * Hexadecimal text of addresses and byte strings, the one spelling every error
 * message, registry record and JSON document uses.
 */

/** `0x`-prefixed lower-case hex of an address or number (`0x401136`; `-0x10` below zero). */
export function hex(v: bigint | number): string {
  return v < 0 ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`;
}

/** Lower-case hex of bytes without separators (`e9fb0f0000`), as build-ids and undo buffers are written. */
export function hexBytes(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
}

/** The bytes of a `hexBytes` string. */
export function fromHexBytes(h: string): Uint8Array {
  return new Uint8Array(Buffer.from(h, "hex"));
}
