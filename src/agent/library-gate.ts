/**
 * The gate's second half (docs/agent.md, "Library targets at start-up and
 * at `dlopen`"): library targets in processes that start later, and at
 * `dlopen`. A library is opened, not exec'd, so the exec gate never sees it.
 *
 * A fanotify group of its own (`FAN_CLASS_CONTENT | FAN_REPORT_TID`) marks
 * `FAN_OPEN_PERM` on the *inode* of each library target the agent found
 * mapped in a running process (`LibraryMark`, through `/proc/PID/map_files/`;
 * the build-id and ELF type are checked here again on the very file before
 * the mark). Every open of that inode then waits for this gate. `REPORT_TID`
 * matters: the opener is a thread, and only it runs the dynamic linker.
 *
 * An open whose thread is not blocked right after a syscall instruction of
 * its process's dynamic linker (`/proc/PID/task/TID/syscall`) is allowed at
 * once, never traced: the agent scanning, a worker reading symbols, `ld`,
 * `cat`. A loader's open is handed to a `LibraryParker`, and the process,
 * once parked, to the agent (`parked`, as the exec gate does).
 *
 * The gate never opens a marked inode for reading (its own open would wait
 * for its own answer): every file it reads goes through `openForRead`.
 */
import { closeSync, fstatSync, openSync, read, readFileSync, readSync, statSync, writeSync } from "node:fs";
import { ET } from "../elf/defs.ts";
import { XspliceError } from "../errors.ts";
import { FAN, fanotifyInit, fanotifyMark } from "../process/libc.ts";
import { readMaps } from "../process/maps.ts";
import { buildIdOfFd, createBuildIdCache } from "./build-id.ts";
import { commOf } from "./discover.ts";
import { dynamicLinkerOf, inLinkerCode } from "./dynamic-linker.ts";
import { devString, LibraryParker } from "./library-parker.ts";
import type { Parked } from "./start-held.ts";
import { TraceeWake } from "./tracee-wake.ts";

/**
 * A library target as the agent tells the gate about it: mapped in a running
 * process (`pid` and its offset-0 mapping), or a file no process maps yet
 * (`path`, from the payload's hints, `library-files.ts`).
 */
export type LibraryMark =
  | {
      /** The payload target's build-id (hex). */
      buildId: string;
      pid: number;
      /** The offset-0 mapping of the library in `pid`. */
      start: bigint;
      end: bigint;
    }
  | { buildId: string; path: string };

/** What the library gate reports (a subset of the gate's `FromGate`). */
export type LibraryGateEvent =
  | { type: "library"; buildId: string; file: string; error?: string }
  | { type: "parked"; pid: number; comm: string; buildId: string; parkedMs: number }
  | { type: "error"; pid: number; message: string };

/** `O_PATH`: a descriptor that names an inode without opening it (no permission event). */
const O_PATH = 0o10000000;
const O_CLOEXEC = 0o2000000;
/** Same deadline as the exec gate: from the open to parked. */
const PARK_DEADLINE_MS = 5000;

function message(err: unknown): string {
  return err instanceof XspliceError ? `${err.errno}: ${err.message}` : String(err);
}

/** The thread group of thread `tid` (`Tgid:` of its status, written by the kernel). */
function tgidOf(tid: number): number {
  const m = /^Tgid:\s+(\d+)$/m.exec(readFileSync(`/proc/${tid}/status`, "latin1"));
  if (!m) throw new XspliceError("ESRCH", `thread ${tid} has no thread group`, { tid });
  return Number(m[1]);
}

/**
 * The user `pc` of a thread blocked in a system call (last field of
 * `/proc/PID/task/TID/syscall`), or undefined when it is running or unreadable.
 */
function syscallPc(pid: number, tid: number): bigint | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/task/${tid}/syscall`, "latin1").trim();
  } catch {
    return undefined;
  }
  const f = text.split(" ");
  if (f.length < 9 || !/^0x[0-9a-f]+$/.test(f[f.length - 1] ?? "")) return undefined;
  return BigInt(f[f.length - 1]!);
}

/** The library half of the gate; `busy(pid)` is true while the exec gate holds that process. */
export class LibraryGate {
  private readonly fan: number;
  /** Marked inodes by `dev:ino` (fstat numbers), each with its `O_PATH` descriptor and build-id. */
  private readonly marks = new Map<string, { buildId: string; fd: number }>();
  private targets = new Set<string>();
  private readonly parking = new Map<number, { parker: LibraryParker; t0: number; id: string }>();
  private readonly parked = new Map<number, Parked>();
  private readonly cache = createBuildIdCache(256);
  private readonly wake = new TraceeWake(() => this.poll());

  constructor(
    private readonly send: (m: LibraryGateEvent) => void,
    private readonly busy: (pid: number) => boolean,
  ) {
    this.fan = fanotifyInit(FAN.CLASS_CONTENT | FAN.REPORT_TID | FAN.CLOEXEC);
    this.loop();
  }

  /** True while `pid` is being parked or is parked here. */
  holds(pid: number): boolean {
    return this.parking.has(pid) || this.parked.has(pid);
  }

  /** The payload targets now: marks of build-ids no longer wanted are removed. */
  setTargets(ids: Iterable<string>): void {
    this.targets = new Set(ids);
    for (const [key, m] of this.marks) {
      if (this.targets.has(m.buildId)) continue;
      try {
        fanotifyMark(this.fan, FAN.MARK_REMOVE, FAN.OPEN_PERM, `/proc/self/fd/${m.fd}`);
      } catch {
        // already gone with its inode
      }
      closeSync(m.fd);
      this.marks.delete(key);
    }
  }

  /** Mark each library (checked again here: a regular ET_DYN file with that build-id, not the program). */
  mark(libs: readonly LibraryMark[]): void {
    for (const lib of libs) {
      const file =
        "path" in lib
          ? lib.path
          : `/proc/${lib.pid}/map_files/${lib.start.toString(16)}-${lib.end.toString(16)}`;
      let fd: number;
      try {
        fd = openSync(file, O_PATH | O_CLOEXEC);
      } catch (err) {
        this.send({ type: "library", buildId: lib.buildId, file, error: String((err as Error).message) });
        continue;
      }
      try {
        const st = fstatSync(fd, { bigint: true });
        const key = `${st.dev}:${st.ino}`;
        if (this.marks.has(key)) {
          closeSync(fd);
          continue;
        }
        if (!this.targets.has(lib.buildId)) throw new XspliceError("ENOENT", "no payload targets it");
        if (!st.isFile()) throw new XspliceError("EINVAL", "not a regular file");
        const exe = "pid" in lib ? statQuiet(`/proc/${lib.pid}/exe`) : undefined;
        if (exe && "pid" in lib && exe.ino === st.ino && exe.dev === st.dev)
          throw new XspliceError("EINVAL", `it is the program of process ${lib.pid}, not a library`);
        const rd = openSync(`/proc/self/fd/${fd}`, "r");
        let id: string | undefined;
        let type = 0;
        try {
          const head = Buffer.alloc(18);
          if (readSync(rd, head, 0, 18, 0) === 18) type = head.readUInt16LE(16);
          id = buildIdOfFd(rd, Number(st.size));
        } finally {
          closeSync(rd);
        }
        if (type !== ET.DYN) throw new XspliceError("EINVAL", "not a shared object (ET_DYN)");
        if (id !== lib.buildId)
          throw new XspliceError(
            "EINVAL",
            `build-id ${id ?? "none"}, not ${lib.buildId} (replaced meanwhile)`,
          );
        // Through the descriptor's /proc link: resolved to the very inode, and no open (no event).
        fanotifyMark(this.fan, FAN.MARK_ADD, FAN.OPEN_PERM, `/proc/self/fd/${fd}`);
        this.marks.set(key, { buildId: lib.buildId, fd });
        this.send({ type: "library", buildId: lib.buildId, file });
      } catch (err) {
        closeSync(fd);
        this.send({ type: "library", buildId: lib.buildId, file, error: message(err) });
      }
    }
  }

  /** Release `pid` if it is parked here (true), else false. */
  release(pid: number): boolean {
    const p = this.parked.get(pid);
    if (!p) return false;
    this.parked.delete(pid);
    p.release();
    return true;
  }

  /** The agent is gone: nothing stays held. */
  shutdown(): void {
    for (const p of this.parking.values()) p.parker.letGoNow("gate stopping");
    for (const p of this.parked.values()) {
      try {
        p.release();
      } catch {
        // gone
      }
    }
  }

  /**
   * Open `path` for reading unless it is a file marked here (EBUSY): opening a
   * marked inode would make this gate wait for its own answer.
   */
  openForRead = (path: string): number => {
    const o = openSync(path, O_PATH | O_CLOEXEC);
    try {
      const st = fstatSync(o, { bigint: true });
      if (this.marks.has(`${st.dev}:${st.ino}`))
        throw new XspliceError("EBUSY", `${path} is a library target this gate holds a mark on`);
      return openSync(`/proc/self/fd/${o}`, "r");
    } finally {
      closeSync(o);
    }
  };

  private respond(fd: number, allow: boolean): void {
    const r = Buffer.alloc(8);
    r.writeInt32LE(fd, 0);
    r.writeUInt32LE(allow ? FAN.ALLOW : FAN.DENY, 4);
    writeSync(this.fan, r);
  }

  private handle(evFd: number, tid: number): void {
    let answered = false;
    let pid = 0;
    try {
      const st = fstatSync(evFd, { bigint: true });
      const key = `${st.dev}:${st.ino}:${st.mtimeNs}:${st.size}`;
      let id = this.cache.get(key);
      if (id === undefined) {
        id = buildIdOfFd(evFd, Number(st.size)) ?? null;
        this.cache.set(key, id);
      }
      if (id === null || !this.targets.has(id)) return;
      pid = tgidOf(tid);
      if (pid === process.pid || this.busy(pid) || this.holds(pid)) return;
      // Cheap filter before any ptrace: is the opener a dynamic linker, right after its openat?
      const pc = syscallPc(pid, tid);
      if (pc === undefined) return;
      const ld = dynamicLinkerOf(pid, readMaps(pid), this.openForRead);
      if (!ld || !inLinkerCode(ld, pc)) return;
      const t0 = performance.now();
      const parker = new LibraryParker(pid, tid, ld, { dev: devString(st.dev), inode: st.ino }, () => {
        answered = true;
        this.respond(evFd, true);
      });
      this.parking.set(pid, { parker, t0, id });
      this.schedule();
    } catch (err) {
      // A process that vanished meanwhile is no error worth a line.
      if (
        !(err instanceof XspliceError && err.errno === "ESRCH") &&
        (err as NodeJS.ErrnoException).code !== "ENOENT"
      )
        this.send({ type: "error", pid: pid || tid, message: message(err) });
    } finally {
      if (!answered) this.respond(evFd, true);
      closeSync(evFd);
    }
  }

  private schedule(): void {
    if (this.parking.size > 0) this.wake.schedule();
  }

  /** Read what every tracee being parked reported; whether any is still being parked. */
  private poll(): boolean {
    for (const [pid, p] of this.parking) {
      try {
        if (performance.now() - p.t0 > PARK_DEADLINE_MS) p.parker.abandon();
        const r = p.parker.poll();
        if (!r) continue;
        this.parking.delete(pid);
        if (r.kind === "parked") {
          this.parked.set(pid, r.parked);
          this.send({
            type: "parked",
            pid,
            comm: commOf(pid),
            buildId: p.id,
            parkedMs: performance.now() - p.t0,
          });
        } else if (r.why !== "it ended" && !r.why.startsWith("opened by code"))
          this.send({
            type: "error",
            pid,
            message: `library ${p.id.slice(0, 12)}: ${r.why}; not patched before use`,
          });
      } catch (err) {
        this.parking.delete(pid);
        p.parker.letGoNow(message(err));
        this.send({ type: "error", pid, message: message(err) });
      }
    }
    return this.parking.size > 0;
  }

  private loop(): void {
    const buf = Buffer.alloc(FAN.EVENT_SIZE * 64);
    const next = () =>
      read(this.fan, buf, 0, buf.length, null, (err, n) => {
        if (err) {
          this.send({ type: "error", pid: 0, message: `fanotify read (libraries): ${err.message}` });
          process.exit(1); // immediate: see exitWithoutJoin in gate.ts
        }
        for (let at = 0; at + FAN.EVENT_SIZE <= n; ) {
          const len = buf.readUInt32LE(at);
          const vers = buf.readUInt8(at + 4);
          const mask = buf.readBigUInt64LE(at + 8);
          const fd = buf.readInt32LE(at + 16);
          const tid = buf.readInt32LE(at + 20);
          if (vers !== FAN.METADATA_VERSION || len < FAN.EVENT_SIZE) break;
          if (fd >= 0 && (mask & FAN.PERM_EVENTS) !== 0n) this.handle(fd, tid);
          else if (fd >= 0) closeSync(fd); // not a permission event: nothing to answer
          at += len;
        }
        next();
      });
    next();
  }
}

function statQuiet(path: string): { ino: bigint; dev: bigint } | undefined {
  try {
    return statSync(path, { bigint: true });
  } catch {
    return undefined;
  }
}
