/**
 * Reading a file that someone else may control — a payload named on the
 * command line, an object a target has mapped — without letting it hang or
 * exhaust xsplice (issue #11 items 7 and 10): the file is opened non-blocking
 * (a FIFO does not wait for a writer), checked to be a regular file on the
 * descriptor (what is read is what was checked), and read only up to a bound
 * decided before a byte is allocated.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";
import { XspliceError } from "./errors.ts";

/** An open regular file: its descriptor and the `fstat` of that descriptor. */
export interface OpenedFile {
  fd: number;
  stat: Stats;
}

function kindOf(st: Stats): string {
  if (st.isFIFO()) return "a FIFO";
  if (st.isCharacterDevice()) return "a character device";
  if (st.isBlockDevice()) return "a block device";
  if (st.isDirectory()) return "a directory";
  if (st.isSocket()) return "a socket";
  return "not a regular file";
}

/**
 * Open `path` read-only, non-blocking and without becoming a controlling
 * terminal, and check on the descriptor that it is a regular file: anything
 * else is `EINVAL` naming `what` and the kind. fs errors are thrown as they
 * are (the caller words them); the descriptor is the caller's to close.
 */
export function openRegularFile(path: string, what: string): OpenedFile {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new XspliceError("EINVAL", `${what} is ${kindOf(stat)}, not a regular file`);
    return { fd, stat };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/**
 * Read the first `length` bytes of an open file (all of them, or `EIO`: a
 * file that shrank under us is not the file that was checked). The caller
 * bounds `length` before calling.
 */
export function readOpened(file: OpenedFile, length: number, what: string, offset = 0): Uint8Array {
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = readSync(file.fd, out, done, length - done, offset + done);
    if (n === 0) throw new XspliceError("EIO", `${what} ended after ${done} of ${length} bytes (it shrank)`);
    done += n;
  }
  return out;
}
