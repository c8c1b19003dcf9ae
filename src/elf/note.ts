/**
 * ELF notes (`SHT_NOTE` sections, `PT_NOTE` segments): `namesz`, `descsz`,
 * `type`, then the name and the descriptor, each padded to the note alignment.
 * Build-ids (SPEC §1, §4) are GNU notes of type `NT_GNU_BUILD_ID`.
 */
import { Buffer } from "node:buffer";
import { elfError } from "../errors.ts";
import { inBounds } from "./_check.ts";

/** One note; `desc` is a view on the file's bytes, `offset` the file offset of its header. */
export interface ElfNote {
  /** Owner, without the terminating NUL (e.g. `GNU`). */
  name: string;
  /** `NT`, interpreted per owner */
  type: number;
  desc: Uint8Array;
  offset: number;
}

function pad(n: number, align: number): number {
  // Arithmetic, not bit masks: sizes may exceed 2^31.
  return Math.ceil(n / align) * align;
}

/**
 * Parse the notes in `bytes[start, start+size)`. `align` is 4, or 8 when the
 * section/segment is 8-aligned (`.note.gnu.property` on 64-bit; the gABI
 * leaves this to the container). A name or descriptor running past the end:
 * EINVAL naming `what` and the note's offset.
 */
export function parseNotes(
  bytes: Uint8Array,
  start: number,
  size: number,
  align: 4 | 8,
  what: string,
): ElfNote[] {
  if (!inBounds(start, size, bytes.length))
    throw elfError("EINVAL", start, `${what}: notes outside the file`, size);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = start + size;
  const out: ElfNote[] = [];
  let at = start;
  while (at < end) {
    if (end - at < 12) throw elfError("EINVAL", at, `${what}: note header truncated`, end - at);
    const namesz = dv.getUint32(at, true);
    const descsz = dv.getUint32(at + 4, true);
    const type = dv.getUint32(at + 8, true);
    const nameAt = at + 12;
    if (namesz > end - nameAt) throw elfError("EINVAL", at, `${what}: note namesz overruns`, namesz);
    // Padding is counted from the note's start (binutils and the kernel agree):
    // with 8-byte notes the 12-byte header plus "GNU\0" lands the descriptor at +16.
    const descAt = at + pad(12 + namesz, align);
    if (descAt > end || descsz > end - descAt)
      throw elfError("EINVAL", at + 4, `${what}: note descsz overruns`, descsz);
    let nameEnd = nameAt + namesz;
    while (nameEnd > nameAt && bytes[nameEnd - 1] === 0) nameEnd--;
    const name = Buffer.from(bytes.buffer, bytes.byteOffset + nameAt, nameEnd - nameAt).toString("utf8");
    out.push({ name, type, desc: bytes.subarray(descAt, descAt + descsz), offset: at });
    at += pad(descAt - at + descsz, align);
  }
  return out;
}

/** Note alignment for a container whose `sh_addralign`/`p_align` is `align`. */
export function noteAlign(align: bigint): 4 | 8 {
  return align === 8n ? 8 : 4;
}
