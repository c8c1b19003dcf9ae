/**
 * Lets the gate exit. Its fanotify groups are read by blocking `read`s on
 * libuv's thread pool, and Node joins that pool when the process exits: a
 * `read` that no event ends keeps the process alive forever (the library
 * group sees an event only when a library target is opened). A private file
 * carries a plain `FAN_OPEN` mark in every group; opening it once before
 * `exit` hands each blocked `read` an event, so each pool thread returns.
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The wake-up file of one gate process. */
export class GateWake {
  readonly path: string;
  private readonly dir: string;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "xsplice-gate-"));
    this.path = join(this.dir, "wake");
    writeFileSync(this.path, "", { mode: 0o600 });
  }

  /** Hand every group's blocked `read` an event, and remove the file. */
  fire(): void {
    try {
      closeSync(openSync(this.path, "r"));
    } catch {
      // removed by someone else: nothing to wake with
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
