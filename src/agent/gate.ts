/**
 * The agent's exec gate (SPEC §14 "every process that starts later, before
 * the first instruction of its main"): a fanotify `FAN_OPEN_EXEC_PERM` mark
 * on every local filesystem makes each `execve` on the host wait for this
 * process's answer. The file being executed comes with the event as a
 * descriptor, so its build-id is read from the very file (never a path); a
 * file that is no payload's target is allowed at once. For a target, the
 * exec'ing process is seized *before* the answer (it is blocked in the
 * kernel, still the old program), then allowed, and parked at the new
 * program's entry point (`start-held.ts`); the agent converges it and tells
 * the gate to release it.
 *
 * Why fanotify and not the proc connector or polling /proc: those report an
 * exec after it happened, when the program may already be past `main`; only
 * a permission event holds the exec until the tracer is attached. If the gate
 * dies, the kernel allows every pending event (the descriptor closes) and a
 * process it parked is released by `disconnect` handling or, if killed
 * outright, stays asleep at its entry (killable). The gate runs as its own
 * process so that the agent may spawn workers (whose own `execve` the gate
 * must answer) without waiting on itself.
 *
 * Library targets (a library is opened, not exec'd) are gated by the
 * second fanotify group of `library-gate.ts`, which runs in this process too.
 */
import { closeSync, fstatSync, read, readFileSync, writeSync } from "node:fs";
import { XspliceError } from "../errors.ts";
import { FAN, fanotifyInit, fanotifyMark } from "../process/libc.ts";
import { buildIdOfFd, createBuildIdCache } from "./build-id.ts";
import { whenParentGone } from "./child-entry.ts";
import { commOf } from "./discover.ts";
import { LibraryGate, type LibraryGateEvent, type LibraryMark } from "./library-gate.ts";
import { ExecParker, type Parked } from "./start-held.ts";
import { TraceeWake } from "./tracee-wake.ts";

/** Messages the agent sends the gate. */
export type ToGate =
  | { type: "targets"; buildIds: string[] }
  | { type: "release"; pid: number }
  | { type: "libraries"; libs: LibraryMark[] };

/** Messages the gate sends the agent. */
export type FromGate =
  | { type: "ready"; marked: string[]; failed: string[] }
  | { type: "parked"; pid: number; comm: string; buildId: string; parkedMs: number }
  | { type: "released"; pid: number; error?: string }
  | { type: "error"; pid: number; message: string }
  | LibraryGateEvent;

/** Filesystem types that hold no programs (or cannot be marked). */
const PSEUDO = new Set([
  "proc",
  "sysfs",
  "cgroup",
  "cgroup2",
  "devpts",
  "mqueue",
  "debugfs",
  "tracefs",
  "securityfs",
  "pstore",
  "bpf",
  "fusectl",
  "configfs",
  "hugetlbfs",
  "autofs",
  "binfmt_misc",
  "nsfs",
  "rpc_pipefs",
  "efivarfs",
]);

/** Mount points of the filesystems to gate, one per device. */
export function gatedMounts(mountinfo = readFileSync("/proc/self/mountinfo", "utf8")): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const line of mountinfo.split("\n")) {
    const [left, right] = line.split(" - ");
    if (!left || !right) continue;
    const f = left.split(" ");
    const dev = f[2];
    const mount = f[4]?.replace(/\\040/g, " ");
    const type = right.split(" ")[0] ?? "";
    if (!dev || !mount || PSEUDO.has(type) || seen.has(dev)) continue;
    seen.add(dev);
    out.push(mount);
  }
  return out;
}

/** How long a parked process's release is retried while another tracer holds it. */
const RELEASE_RETRY_MS = 30_000;

/**
 * Make every exit of the gate immediate, whatever ends it (a stop, an uncaught error): libuv
 * joins its thread pool at exit, and one of its threads sits in `read(2)` on the fanotify
 * descriptor until the next exec on the host (measured: a Node process with a pool thread
 * blocked in a read never finishes `process.exit`). On a quiet host that kept the gate, and the
 * agent that waits for its children, alive for minutes (test/agent/stop.test.ts). SIGKILL ends it
 * before the join; the kernel closes the descriptor, which allows every pending event.
 */
function exitWithoutJoin(): void {
  process.once("exit", () => process.kill(process.pid, "SIGKILL"));
}

/** How long a gated process may take from the permission event to its entry point before it is let go. */
const PARK_DEADLINE_MS = 5000;

/**
 * Run the gate in this process, talking to the agent over the IPC channel;
 * `mounts` are the filesystems to gate (default: `gatedMounts()`).
 */
export function runGate(mounts: readonly string[] = gatedMounts()): void {
  process.title = "xsplice";
  exitWithoutJoin();
  // The agent may be gone (killed): a send on the closed channel would be an uncaught error.
  const send = (m: FromGate) => {
    if (process.connected) process.send?.(m);
  };
  const fan = fanotifyInit(FAN.CLASS_CONTENT | FAN.CLOEXEC);
  const marked: string[] = [];
  const failed: string[] = [];
  for (const m of mounts) {
    try {
      fanotifyMark(fan, FAN.MARK_ADD | FAN.MARK_FILESYSTEM, FAN.OPEN_EXEC_PERM, m);
      marked.push(m);
    } catch {
      try {
        fanotifyMark(fan, FAN.MARK_ADD | FAN.MARK_MOUNT, FAN.OPEN_EXEC_PERM, m);
        marked.push(m);
      } catch {
        failed.push(m);
      }
    }
  }
  let targets = new Set<string>();
  const parked = new Map<number, Parked>();
  const parking = new Map<number, { parker: ExecParker; t0: number; id: string }>();
  // Parking is driven from the event loop, never by blocking: inside the same execve the kernel
  // opens the program's dynamic linker, whose permission event this gate must answer too. It
  // polls on SIGCHLD (tracee-wake.ts), not in a spin that would take a core from the parked.
  const pollParking = (): boolean => {
    for (const [pid, p] of parking) {
      try {
        const done = p.parker.poll();
        if (done === "let-go")
          parking.delete(pid); // exec'd a program that is no target: untraced
        else if (done) {
          parking.delete(pid);
          parked.set(pid, done);
          send({ type: "parked", pid, comm: commOf(pid), buildId: p.id, parkedMs: performance.now() - p.t0 });
        } else if (performance.now() - p.t0 > PARK_DEADLINE_MS) {
          parking.delete(pid);
          p.parker.abandon();
          send({
            type: "error",
            pid,
            message: `ETIMEDOUT: did not reach its entry point in ${PARK_DEADLINE_MS} ms; let go unpatched`,
          });
        }
      } catch (err) {
        parking.delete(pid);
        p.parker.abandon();
        // A forked child that simply ends before the entry is no error of anyone's.
        if (p.parker.forked && err instanceof XspliceError && err.errno === "ECHILD") continue;
        send({
          type: "error",
          pid,
          message: err instanceof XspliceError ? `${err.errno}: ${err.message}` : String(err),
        });
      }
    }
    return parking.size > 0;
  };
  const wake = new TraceeWake(pollParking);
  const cache = createBuildIdCache(1024);
  let libraries: LibraryGate | undefined;
  try {
    libraries = new LibraryGate(send, (pid) => parking.has(pid) || parked.has(pid));
  } catch (err) {
    send({ type: "error", pid: 0, message: `library gate: ${(err as Error).message}` });
  }

  const respond = (fd: number, allow: boolean) => {
    const r = Buffer.alloc(8);
    r.writeInt32LE(fd, 0);
    r.writeUInt32LE(allow ? FAN.ALLOW : FAN.DENY, 4);
    writeSync(fan, r);
  };

  const handle = (evFd: number, pid: number) => {
    let answered = false;
    try {
      const st = fstatSync(evFd, { bigint: true });
      const key = `${st.dev}:${st.ino}:${st.mtimeNs}:${st.size}`;
      let id = cache.get(key);
      if (id === undefined) {
        id = buildIdOfFd(evFd, Number(st.size)) ?? null;
        cache.set(key, id);
      }
      const tracked = parking.get(pid);
      if (tracked) {
        // Traced here already (a child forked before its entry, or a program exec'ing again
        // before it): its parker holds it for the new program or lets it go.
        tracked.parker.willExec(id !== null && targets.has(id));
        return;
      }
      if (id === null || !targets.has(id) || pid === process.pid || libraries?.holds(pid)) return;
      const t0 = performance.now();
      const track = (parker: ExecParker) => {
        parking.set(parker.pid, { parker, t0: performance.now(), id: id! });
        wake.schedule();
      };
      const parker = new ExecParker(
        pid,
        () => {
          answered = true;
          respond(evFd, true);
        },
        track,
      );
      parking.set(pid, { parker, t0, id });
      wake.schedule();
    } catch (err) {
      send({
        type: "error",
        pid,
        message: err instanceof XspliceError ? `${err.errno}: ${err.message}` : String(err),
      });
    } finally {
      if (!answered) respond(evFd, true);
      closeSync(evFd);
    }
  };

  const buf = Buffer.alloc(FAN.EVENT_SIZE * 64);
  const loop = () => {
    read(fan, buf, 0, buf.length, null, (err, n) => {
      if (err) {
        send({ type: "error", pid: 0, message: `fanotify read: ${err.message}` });
        process.exit(1);
      }
      for (let at = 0; at + FAN.EVENT_SIZE <= n; ) {
        const len = buf.readUInt32LE(at);
        const vers = buf.readUInt8(at + 4);
        const mask = buf.readBigUInt64LE(at + 8);
        const fd = buf.readInt32LE(at + 16);
        const pid = buf.readInt32LE(at + 20);
        if (vers !== FAN.METADATA_VERSION || len < FAN.EVENT_SIZE) break;
        if (fd >= 0 && (mask & FAN.PERM_EVENTS) !== 0n) handle(fd, pid);
        else if (fd >= 0) closeSync(fd); // not a permission event: nothing to answer
        at += len;
      }
      loop();
    });
  };
  loop();

  const release = (pid: number, since: number) => {
    const p = parked.get(pid);
    if (!p) return;
    try {
      p.release();
      parked.delete(pid);
      send({ type: "released", pid });
    } catch (err) {
      // Held by another tracer at this moment (a second xsplice looking at it): it stays parked,
      // so try again rather than leave it asleep at its entry; a process that is gone ends it.
      const busy = err instanceof XspliceError && (err.errno === "EPERM" || err.errno === "EBUSY");
      if (busy && performance.now() - since < RELEASE_RETRY_MS) {
        setTimeout(() => release(pid, since), 20);
        return;
      }
      parked.delete(pid);
      send({ type: "released", pid, error: String((err as Error).message) });
    }
  };
  process.on("message", (m: ToGate) => {
    if (m.type === "targets") {
      targets = new Set(m.buildIds);
      libraries?.setTargets(m.buildIds);
    } else if (m.type === "libraries") libraries?.mark(m.libs);
    else if (m.type === "release") {
      try {
        if (libraries?.release(m.pid)) {
          send({ type: "released", pid: m.pid });
          return;
        }
      } catch (err) {
        send({ type: "released", pid: m.pid, error: String((err as Error).message) });
        return;
      }
      release(m.pid, performance.now());
    }
  });
  const onDisconnect = () => {
    // Never leave a parked process asleep: the agent is gone, so it starts as it is.
    libraries?.shutdown();
    for (const p of parking.values()) p.parker.abandon();
    for (const p of parked.values()) {
      try {
        p.release();
      } catch {
        // gone, or held by another tracer: asleep at its entry, where SIGTERM/SIGKILL still end it
      }
    }
    process.exit(0);
  };
  whenParentGone(onDisconnect);
  send({ type: "ready", marked, failed });
}
