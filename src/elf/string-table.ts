/**
 * String tables (`SHT_STRTAB`): names are decoded straight from the file's
 * bytes (no copy of the table) and cached by offset, because a large object's
 * symbol table names the same strings many times and decoding is the hot path.
 */
import { Buffer } from "node:buffer";
import { sectionError } from "./_check.ts";

/** One checked string table: non-empty and NUL-terminated (SPEC §2). */
export class StringTable {
  /** File offset of the table, for error messages. */
  readonly fileOffset: number;
  readonly #buf: Buffer;
  readonly #cache = new Map<number, string>();
  readonly #section: { index: number; name: string };

  /**
   * Wrap `bytes` (the table's contents) after checking it; `section` names the
   * table in errors. Empty or unterminated → EINVAL.
   */
  constructor(bytes: Uint8Array, fileOffset: number, section: { index: number; name: string }) {
    this.fileOffset = fileOffset;
    this.#section = section;
    if (bytes.length === 0) throw sectionError("EINVAL", fileOffset, section, "string table is empty");
    if (bytes[bytes.length - 1] !== 0) {
      throw sectionError("EINVAL", fileOffset + bytes.length - 1, section, "string table not NUL-terminated");
    }
    this.#buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** Size of the table in bytes. */
  get size(): number {
    return this.#buf.length;
  }

  /**
   * The NUL-terminated string at `offset`. Out of bounds → EINVAL naming
   * `what` and `fieldOffset`, the file offset of the field that held `offset`.
   */
  get(offset: number, what: string, fieldOffset: number): string {
    const hit = this.#cache.get(offset);
    if (hit !== undefined) return hit;
    if (offset >= this.#buf.length) {
      throw sectionError(
        "EINVAL",
        fieldOffset,
        this.#section,
        `${what} out of bounds of the string table`,
        offset,
      );
    }
    // The table ends in a NUL (checked above), so indexOf always finds one.
    const end = this.#buf.indexOf(0, offset);
    const s = end === offset ? "" : this.#buf.toString("utf8", offset, end);
    this.#cache.set(offset, s);
    return s;
  }
}
