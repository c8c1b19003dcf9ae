/**
 * One agent per host (docs/agent.md): an agent converges every process of
 * the host and reverts the `NAME@ID12` payloads its own directory does not
 * hold, so a second agent would undo the first one's work and the other way
 * round, each believing it is right. Rather than fight silently, the second
 * one does not start: `EBUSY` naming the holder. An exclusive `flock` on a
 * fixed file under /run is the test — the kernel drops it when the holder
 * dies, even by SIGKILL, so a restarted agent never meets a stale lock. The
 * descriptor is close-on-exec (Node opens every file so): the gate and the
 * workers do not hold it.
 */
import { closeSync, ftruncateSync, mkdirSync, openSync, readFileSync, writeSync } from "node:fs";
import { dirname } from "node:path";
import { XspliceError } from "../errors.ts";
import { tryLockExclusive } from "../process/libc.ts";

/** Where the host's agent lock lives. */
export const AGENT_LOCK = "/run/xsplice/agent.lock";

/** Take the host's agent lock (held until this process ends, or `release()`), else EBUSY. */
export function lockHost(path = AGENT_LOCK): { release(): void } {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const fd = openSync(path, "a+", 0o644);
  let locked = false;
  try {
    locked = tryLockExclusive(fd);
    if (!locked) {
      const holder = readFileSync(path, "latin1").trim().slice(0, 20);
      throw new XspliceError(
        "EBUSY",
        `another xsplice agent${/^\d+$/.test(holder) ? ` (pid ${holder})` : ""} holds ${path}: one agent per host, since each reverts the payloads the other applied`,
      );
    }
    ftruncateSync(fd, 0);
    writeSync(fd, `${process.pid}\n`);
  } finally {
    if (!locked) closeSync(fd);
  }
  return { release: () => closeSync(fd) };
}
