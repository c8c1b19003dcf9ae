/**
 * `xsplice agent` (SPEC §14): keeps every process of the host in line with a
 * directory of payloads.
 *
 * - **Running processes.** A scan (at start, on every change of the
 *   directory seen by `fs.watch`, and every `rescanMs` regardless, since
 *   watches miss events) finds the processes that map a payload's target
 *   build-id or hold an agent-managed payload, and converges each one that
 *   differs from the directory (`converge.ts`) on a warm pool of worker
 *   processes (`fanout.ts`).
 * - **Processes that start later.** The exec gate (`gate.ts`) parks each
 *   new process of a target executable at its entry point; it is converged
 *   at once and released, so `main` runs patched.
 * - **Truth.** Nothing is remembered between runs: each process's registry
 *   says what is applied, and names `NAME@ID12` say which file and content
 *   they came from, so a restarted (or SIGKILLed) agent converges to the
 *   directory from wherever things are. Interrupted operations are recovered
 *   by the next session on that process (SPEC §8).
 * - **Reporting.** `status()` (served on a Unix socket, `status-server.ts`),
 *   Prometheus metrics, and one audit line (JSON) per action.
 */
import { type ChildProcess, fork } from "node:child_process";
import { type FSWatcher, readFileSync, watch } from "node:fs";
import { readTargetRegistry } from "../core/registry/remote.ts";
import { parseMaps } from "../process/maps.ts";
import { createBuildIdCache } from "./build-id.ts";
import { childEntry } from "./child-entry.ts";
import type { ConvergeStep, WantedPayload } from "./converge.ts";
import { commOf, findMappedBuildId, listPids } from "./discover.ts";
import { WorkerPool } from "./fanout.ts";
import type { FromGate, ToGate } from "./gate.ts";
import type { JobPolicy, JobTiming } from "./jobs.ts";
import { findLibraryFiles } from "./library-files.ts";
import type { LibraryMark } from "./library-gate.ts";
import { libraryMappings } from "./library-targets.ts";
import { AgentMetrics } from "./metrics.ts";
import { type DirPayload, managedBase, readPayloadDir } from "./payload-dir.ts";

/** Processes a scan looks at between two turns of the event loop. */
const SCAN_SLICE = 16;

/** Options of the agent. */
export interface AgentOptions {
  dir: string;
  policy: JobPolicy;
  timing?: JobTiming;
  /** Workers (default: the number of CPUs). */
  concurrency: number;
  /** Full rescan period, ms (default 2000). */
  rescanMs?: number;
  /** Gate new processes with fanotify (default true). */
  gate?: boolean;
  /** Filesystems to gate, by a path on each (default: every local one, `gatedMounts()`). */
  gateMounts?: string[];
  /** Where audit lines go (default: stdout). */
  audit?: (line: string) => void;
  /** Diagnostics (default: stderr). */
  log?: (line: string) => void;
}

/** One payload × process cell of the status. */
export interface ProcessPayloadStatus {
  name: string;
  status: "applied" | "pending" | "failed";
  error?: string;
}

/** What `xsplice status` shows (the socket's `status` answer). */
export interface AgentStatus {
  agent: { pid: number; dir: string; since: string; scans: number; gate: "on" | "off" | "failed" };
  payloads: { name: string; file: string; target: string; registryName: string }[];
  rejected: { file: string; error: string; message: string }[];
  processes: { pid: number; comm: string; payloads: ProcessPayloadStatus[] }[];
}

interface ProcessView {
  comm: string;
  wanted: DirPayload[];
  failed: Map<string, string>;
  /** Registry names applied when last looked at. */
  applied: Set<string>;
}

/** The agent; `start()` it, `stop()` it. */
export class Agent {
  readonly metrics = new AgentMetrics();
  private readonly pool: WorkerPool;
  private readonly cache = createBuildIdCache();
  private payloads: DirPayload[] = [];
  private rejected: AgentStatus["rejected"] = [];
  private readonly seenRejections = new Set<string>();
  private readonly views = new Map<number, ProcessView>();
  private readonly inFlight = new Set<number>();
  /** Library targets told to the gate, by mapped `dev:inode` (docs/agent.md). */
  private readonly libraries = new Map<string, LibraryMark>();
  private watcher: FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private gate: ChildProcess | undefined;
  private gateState: AgentStatus["agent"]["gate"] = "off";
  private scanning: Promise<void> | undefined;
  private again = false;
  private scans = 0;
  private stopped = false;
  private readonly since = new Date().toISOString();
  private readonly audit: (line: string) => void;
  private readonly log: (line: string) => void;

  constructor(readonly opts: AgentOptions) {
    this.pool = new WorkerPool(opts.concurrency);
    this.audit = opts.audit ?? ((l) => process.stdout.write(`${l}\n`));
    this.log = opts.log ?? ((l) => process.stderr.write(`xsplice agent: ${l}\n`));
  }

  /** Start watching, gating and converging; resolves after the first scan. */
  async start(): Promise<void> {
    this.pool.warm();
    if (this.opts.gate !== false) await this.startGate();
    this.watcher = watch(this.opts.dir, () => this.kick());
    this.watcher.on("error", (err) => this.log(`watch ${this.opts.dir}: ${err.message}`));
    this.timer = setInterval(() => this.kick(), this.opts.rescanMs ?? 2000);
    await this.kick();
  }

  /** Stop: no new work; the gate releases what it holds; workers finish their job. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    await this.scanning;
    if (this.gate?.connected) this.gate.disconnect();
    this.pool.close();
  }

  /** Scan now (coalesced: one scan at a time, one more if asked meanwhile). */
  kick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.scanning) {
      this.again = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      try {
        do {
          this.again = false;
          await this.scan();
        } while (this.again && !this.stopped);
      } catch (err) {
        this.log(`scan: ${(err as Error).message}`);
      } finally {
        this.scanning = undefined;
      }
    })();
    return this.scanning;
  }

  private startGate(): Promise<void> {
    return new Promise((resolve) => {
      const gate = childEntry("_gate-main.ts", "agent-gate.js");
      const g = fork(gate.file, this.opts.gateMounts ?? [], {
        execArgv: gate.execArgv,
        serialization: "advanced",
        stdio: ["ignore", "inherit", "inherit", "ipc"],
      });
      this.gate = g;
      g.on("message", (m: FromGate) => {
        if (m.type === "ready") {
          this.gateState = m.marked.length > 0 ? "on" : "failed";
          if (m.failed.length > 0) this.log(`exec gate: could not mark ${m.failed.join(", ")}`);
          this.sendTargets();
          if (this.libraries.size > 0) g.send({ type: "libraries", libs: [...this.libraries.values()] });
          resolve();
        } else if (m.type === "parked") void this.onParked(m.pid, m.comm, m.parkedMs);
        else if (m.type === "error") this.log(`exec gate: pid ${m.pid}: ${m.message}`);
        else if (m.type === "released" && m.error) this.log(`exec gate: release ${m.pid}: ${m.error}`);
        else if (m.type === "library")
          this.log(`library gate: ${m.error ? `cannot mark ${m.file}: ${m.error}` : `marked ${m.file}`}`);
      });
      g.once("exit", (code, signal) => {
        this.gate = undefined;
        this.gateState = "failed";
        resolve();
        if (!this.stopped) {
          this.log(`exec gate exited (${signal ?? code}); restarting it`);
          setTimeout(() => void this.startGate(), 500);
        }
      });
    });
  }

  private sendTargets(): void {
    const msg: ToGate = { type: "targets", buildIds: [...new Set(this.payloads.map((p) => p.target))] };
    for (const [key, lib] of this.libraries)
      if (!msg.buildIds.includes(lib.buildId)) this.libraries.delete(key);
    if (this.gate?.connected) this.gate.send(msg);
  }

  private async onParked(pid: number, comm: string, parkedMs: number): Promise<void> {
    const t0 = performance.now();
    this.metrics.parked++;
    this.metrics.parkSeconds += parkedMs / 1000;
    let released = false;
    // The program waits for this: it is released as soon as the worker is done with it, before
    // the audit lines and the status bookkeeping (which need nothing from it parked).
    const release = () => {
      if (released) return;
      released = true;
      const msg: ToGate = { type: "release", pid };
      if (this.gate?.connected) this.gate.send(msg);
      this.metrics.holdSeconds += (performance.now() - t0) / 1000;
    };
    try {
      const maps = parseMaps(readFileSync(`/proc/${pid}/maps`, "utf8"));
      const wanted = this.payloads.filter((p) => findMappedBuildId(pid, maps, p.target, this.cache));
      await this.converge(pid, comm, wanted, release);
    } catch (err) {
      this.log(`new process ${pid}: ${(err as Error).message}`);
    } finally {
      release();
    }
  }

  private readDirectory(): void {
    const { payloads, rejected } = readPayloadDir(this.opts.dir, this.opts.policy);
    this.payloads = payloads;
    this.rejected = rejected.map((r) => ({ file: r.file, error: r.error.errno, message: r.error.message }));
    for (const r of rejected) {
      const key = `${r.file}:${r.error.message}`;
      if (this.seenRejections.has(key)) continue;
      this.seenRejections.add(key);
      this.auditLine({ action: "refuse", file: r.file }, r.error.errno, r.error.message);
    }
    this.metrics.payloads = payloads.length;
    this.metrics.rejected = rejected.length;
    this.sendTargets();
    this.noteLibraryFiles();
  }

  private async scan(): Promise<void> {
    this.scans++;
    const t0 = performance.now();
    this.readDirectory();
    const exclude = [...this.pool.pids(), ...(this.gate?.pid ? [this.gate.pid] : [])];
    const jobs: Promise<void>[] = [];
    const alive = new Set<number>();
    let looked = 0;
    for (const pid of listPids(exclude)) {
      // A scan reads every process's maps; let a parked new process (onParked) in between, so
      // that it is not kept waiting at its entry for the rest of the host.
      if (++looked % SCAN_SLICE === 0) await new Promise((r) => setImmediate(r));
      let text: string;
      try {
        text = readFileSync(`/proc/${pid}/maps`, "utf8");
      } catch {
        continue;
      }
      if (text === "") continue;
      let maps: ReturnType<typeof parseMaps>;
      try {
        maps = parseMaps(text);
      } catch {
        continue;
      }
      const wanted = this.payloads.filter((p) => findMappedBuildId(pid, maps, p.target, this.cache));
      if (wanted.length > 0) this.noteLibraries(pid, maps, wanted);
      let applied = new Set<string>();
      let managed: string[] = [];
      if (text.includes("xsplice-registry")) {
        try {
          const snap = readTargetRegistry(pid);
          const entries = snap?.state.payloads ?? [];
          applied = new Set(entries.filter((e) => e.state === "APPLIED").map((e) => e.name));
          managed = entries.filter((e) => managedBase(e.name) !== undefined).map((e) => e.name);
        } catch {
          continue; // gone or unreadable now; the next scan sees it again
        }
      }
      if (wanted.length === 0 && managed.length === 0) continue;
      alive.add(pid);
      const view = this.views.get(pid);
      const comm = view?.comm ?? commOf(pid);
      const want = new Set(wanted.map((w) => w.regName));
      const converged = wanted.every((w) => applied.has(w.regName)) && managed.every((m) => want.has(m));
      this.views.set(pid, { comm, wanted, failed: view?.failed ?? new Map(), applied });
      if (converged || this.inFlight.has(pid)) continue;
      jobs.push(this.converge(pid, comm, wanted));
    }
    for (const pid of this.views.keys())
      if (!alive.has(pid) && !this.inFlight.has(pid)) this.views.delete(pid);
    this.metrics.scans++;
    this.metrics.scanSeconds += (performance.now() - t0) / 1000;
    await Promise.all(jobs);
    this.metrics.processesPatched = [...this.views.values()].filter(
      (v) => v.wanted.length > 0 && v.wanted.every((w) => v.applied.has(w.regName)),
    ).length;
  }

  /** Library targets that no process maps yet, found from the payloads' hints (`library-files.ts`). */
  private noteLibraryFiles(): void {
    const found: { key: string; mark: LibraryMark }[] = [];
    for (const p of this.payloads) {
      if (p.libraryFile === undefined && p.librarySoname === undefined) continue;
      const hints = { target: p.target, file: p.libraryFile, soname: p.librarySoname };
      for (const f of findLibraryFiles(hints, this.cache, this.libraries)) {
        this.libraries.set(f.key, f.mark);
        found.push(f);
      }
    }
    if (found.length > 0 && this.gate?.connected)
      this.gate.send({ type: "libraries", libs: found.map((f) => f.mark) });
  }

  private noteLibraries(pid: number, maps: ReturnType<typeof parseMaps>, wanted: DirPayload[]): void {
    const targets = new Set(wanted.map((w) => w.target));
    const found = libraryMappings(pid, maps, targets, this.cache, this.libraries);
    for (const f of found) this.libraries.set(f.key, f.mark);
    const msg: ToGate = { type: "libraries", libs: found.map((f) => f.mark) };
    if (found.length > 0 && this.gate?.connected) this.gate.send(msg);
  }

  /** Converge `pid` on a worker; `afterJob` runs as soon as the worker is done with the process. */
  private async converge(
    pid: number,
    comm: string,
    wanted: DirPayload[],
    afterJob?: () => void,
  ): Promise<void> {
    this.inFlight.add(pid);
    const view: ProcessView = this.views.get(pid) ?? { comm, wanted, failed: new Map(), applied: new Set() };
    view.wanted = wanted;
    this.views.set(pid, view);
    try {
      const w: WantedPayload[] = wanted.map((p) => ({ regName: p.regName, base: p.name, bytes: p.bytes }));
      const out = await this.pool.run(
        { op: "converge", pid, wanted: w, policy: this.opts.policy, ...this.opts.timing },
        { urgent: afterJob !== undefined },
      );
      afterJob?.();
      const steps: ConvergeStep[] = out.steps ?? [];
      if (!out.ok && steps.length === 0) {
        for (const p of wanted) view.failed.set(p.regName, `${out.error}: ${out.message}`);
        this.metrics.failures++;
        this.auditLine({ action: "converge", pid, comm }, out.error, out.message);
      }
      for (const s of steps) {
        this.metrics.actions++;
        if (!s.ok) this.metrics.failures++;
        this.auditLine(
          { action: s.action, payload: s.payload, pid, comm },
          s.ok ? "ok" : (s.error ?? "EIO"),
          s.message,
        );
        if (s.ok) view.failed.delete(s.payload);
        else view.failed.set(s.payload, `${s.error}: ${s.message}`);
      }
      if (out.ok && steps.some((s) => s.action !== "revert" && s.action !== "unload"))
        this.metrics.observeApply(out.ms);
      try {
        const snap = readTargetRegistry(pid);
        view.applied = new Set(
          (snap?.state.payloads ?? []).filter((e) => e.state === "APPLIED").map((e) => e.name),
        );
      } catch {
        view.applied = new Set();
      }
    } finally {
      this.inFlight.delete(pid);
    }
  }

  private auditLine(what: Record<string, unknown>, result: string, message?: string): void {
    this.audit(
      JSON.stringify({
        time: new Date().toISOString(),
        who: { agent: process.pid, uid: process.getuid?.() },
        what,
        result,
        ...(message ? { message } : {}),
      }),
    );
  }

  /** Payloads × processes, as the agent last saw them. */
  status(): AgentStatus {
    return {
      agent: {
        pid: process.pid,
        dir: this.opts.dir,
        since: this.since,
        scans: this.scans,
        gate: this.gateState,
      },
      payloads: this.payloads.map((p) => ({
        name: p.name,
        file: p.file,
        target: p.target,
        registryName: p.regName,
      })),
      rejected: this.rejected,
      processes: [...this.views.entries()]
        .sort(([a], [b]) => a - b)
        .map(([pid, v]) => ({
          pid,
          comm: v.comm,
          payloads: v.wanted.map((p): ProcessPayloadStatus => {
            const failed = v.failed.get(p.regName);
            if (v.applied.has(p.regName)) return { name: p.regName, status: "applied" };
            if (failed) return { name: p.regName, status: "failed", error: failed };
            return { name: p.regName, status: "pending" };
          }),
        })),
    };
  }
}
