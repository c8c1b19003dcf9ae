/**
 * A payload file named by a user (a command's argument, a file of the agent's
 * directory), read whole but bounded, as one-line XspliceErrors: not a regular
 * file, above the size limit, a linked program where a payload belongs, or an
 * fs error (SPEC §2, §10).
 */
import { closeSync } from "node:fs";
import { ELFMAG, ET } from "../elf/defs.ts";
import { XspliceError } from "../errors.ts";
import { type OpenedFile, openRegularFile, readOpened } from "../regular-file.ts";
import { DEFAULT_MAX_PAYLOAD_SIZE } from "./read.ts";

/**
 * A linked ELF file (a program or a library) given where a payload belongs is a user's
 * mix-up, not a malformed payload: say so, with the reader's errno (SPEC §2).
 */
function checkNotLinked(file: string, bytes: Uint8Array): void {
  if (bytes.length < 0x12 || !ELFMAG.every((b, i) => bytes[i] === b)) return;
  // e_type, in the file's byte order (EI_DATA 2: big-endian).
  const type = bytes[5] === 2 ? (bytes[0x10]! << 8) | bytes[0x11]! : bytes[0x10]! | (bytes[0x11]! << 8);
  if (type === ET.EXEC || type === ET.DYN) {
    throw new XspliceError(
      "EOPNOTSUPP",
      `${file} is an executable (or shared object), not a payload: build one with xsplice build/make`,
      { offset: 0x10 },
    );
  }
}

/** Read a file for a command, turning fs errors into one-line XspliceErrors. */
export function readPayloadFile(file: string, maxSize = DEFAULT_MAX_PAYLOAD_SIZE): Uint8Array {
  let opened: OpenedFile | undefined;
  try {
    // Only a regular file, checked on the open descriptor: /dev/zero would be read without end and a
    // FIFO would block for ever (issue #11 item 10).
    opened = openRegularFile(file, file);
    // Refuse before reading: a huge file should not be read into memory only to be refused.
    if (opened.stat.size > maxSize) {
      throw new XspliceError(
        "EINVAL",
        `payload is ${opened.stat.size} bytes, more than the limit of ${maxSize}`,
      );
    }
    const bytes = readOpened(opened, opened.stat.size, file);
    checkNotLinked(file, bytes);
    return bytes;
  } catch (err) {
    if (err instanceof XspliceError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    const errno = code === "ENOENT" || code === "EACCES" || code === "EPERM" ? code : "EIO";
    const why =
      code === "ENOENT"
        ? "no such file"
        : code === "EACCES" || code === "EPERM"
          ? "permission denied"
          : (err as Error).message;
    throw new XspliceError(errno, `cannot read ${file}: ${why}`, {}, { cause: err });
  } finally {
    if (opened) closeSync(opened.fd);
  }
}
