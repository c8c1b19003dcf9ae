/**
 * The xsplice API of SPEC §5, per target process: UPLOAD, GET, LIST and
 * ACTION — the same set the command line uses. GET and LIST read the registry
 * without stopping the target (any shell, any time); UPLOAD and ACTION hold the
 * target seized for their duration (the seize is the lock, `session.ts`).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { type ErrnoName, rcLabel, XspliceError } from "../errors.ts";
import { parseMaps } from "../process/maps.ts";
import type { StopLedger } from "../process/threads.ts";
import { CMD, type Cmd } from "./actions.ts";
import type { XspliceContext } from "./context.ts";
import { type ActionResult, addLedgers, type PerformOptions, retryAfter, runAction } from "./execute.ts";
import {
  planUpload,
  type UploadOptions,
  type UploadTimings,
  unloadPayload,
  uploadPayload,
  uploadPrepared,
} from "./loader.ts";
import { REGISTRY_NAME } from "./registry/format.ts";
import type { PayloadRecord, State } from "./registry/records.ts";
import { findRegistry, isRegistryMapping, readTargetRegistry } from "./registry/remote.ts";
import { openTarget } from "./session.ts";

export type { UploadOptions, UploadTimings } from "./loader.ts";

/** GET's answer (SPEC §5, §10 JSON shape). */
export interface PayloadStatus {
  name: string;
  state: State;
  /** 0, `-EAGAIN` while an action runs, or the negative errno of the last action. */
  rc: number;
}

/** One LIST entry (SPEC §10 JSON shape). */
export interface ListEntry {
  pid: number;
  name: string;
  state: State;
  rc: number;
  metadata: Record<string, string>;
  buildId: string;
}

/** LIST's answer: a page of entries in upload order, how many follow, and the version stamp. */
export interface ListResult {
  /** Changes whenever a payload is added, removed or changes state (SPEC §5). */
  version: number;
  payloads: ListEntry[];
  /** Entries after this page. */
  remaining: number;
}

/** Options of ACTION. */
export interface ActionOptions {
  /** Bound on the time to reach a safe stop, in ms (SPEC §5, default 30). */
  timeoutMs?: number;
  /** NODEPS: skip the `.xsplice.depends` check of APPLY. */
  nodeps?: boolean;
  /** How long to wait for another xsplice run holding the target (ms, default 10000). */
  waitMs?: number;
  /** Caches shared across calls (`createContext()`). */
  context?: XspliceContext;
}

/**
 * A PID as given by a user: a positive integer naming a live process.
 * Not a number `EINVAL`; no such process `ESRCH`.
 */
export function checkPid(pid: number | string): number {
  const n = typeof pid === "number" ? pid : /^\d+$/.test(pid.trim()) ? Number(pid.trim()) : Number.NaN;
  if (!Number.isSafeInteger(n) || n <= 0)
    throw new XspliceError("EINVAL", `'${String(pid)}' is not a process id (a positive integer)`);
  if (!existsSync(`/proc/${n}/maps`)) throw new XspliceError("ESRCH", `no process ${n}`, { pid: n });
  return n;
}

/**
 * UPLOAD (SPEC §2): load payload `bytes` into process `pid` as `name`, state
 * CHECKED. Every SPEC §2 check applies; on failure nothing remains in the process.
 */
export async function upload(
  pid: number,
  name: string,
  bytes: Uint8Array,
  opts: UploadOptions = {},
): Promise<PayloadRecord> {
  return uploadPayload(checkPid(pid), name, bytes, opts).record;
}

/** What LOAD did: the apply's result (its `pause` counts the upload's stops too) and the upload's phases. */
export interface LoadResult extends ActionResult {
  upload: UploadTimings;
}

/**
 * UPLOAD and APPLY in one hold of the process (`xsplice load`): the payload is
 * linked before the process is held, mapped in one stop and applied in the
 * next, and detached from that stop. When the apply fails the payload is
 * unloaded again in the same hold, so a failed load leaves nothing behind.
 */
export function load(
  pid: number,
  name: string,
  bytes: Uint8Array,
  opts: UploadOptions & PerformOptions = {},
): LoadResult {
  const n = checkPid(pid);
  const start = performance.now();
  let pause: StopLedger | undefined;
  for (let tries = 1; ; tries++) {
    const up = planUpload(n, name, bytes, opts);
    const session = openTarget(n, {
      waitMs: opts.waitMs,
      forPayload: name,
      context: opts.context,
      boost: opts.boost,
    });
    try {
      const uploaded = uploadPrepared(session, up);
      let result: ActionResult;
      try {
        result = runAction(session, name, "APPLY", { ...opts, leaveStopped: true });
      } catch (err) {
        try {
          unloadPayload(session, name);
        } catch {
          // The apply's error is the one to report; an unload failure leaves a CHECKED payload.
        }
        throw err;
      }
      session.close();
      return { ...result, pause: addLedgers(pause, session.tracee.stops), tries, upload: uploaded.timings };
    } catch (err) {
      session.close();
      pause = addLedgers(pause, session.tracee.stops);
      if (!retryAfter(err, start, opts.retryForMs ?? 0, tries)) throw err;
    }
  }
}

/** GET (SPEC §5): state and rc of payload `name`; unknown `ENOENT`. Does not stop the process. */
export async function get(pid: number, name: string): Promise<PayloadStatus> {
  const p = readTargetRegistry(checkPid(pid))?.state.payloads.find((x) => x.name === name);
  if (!p) throw new XspliceError("ENOENT", `no payload named '${name}' in process ${pid}`, { pid });
  return { name: p.name, state: p.state, rc: p.rc };
}

function entry(pid: number, p: PayloadRecord): ListEntry {
  return { pid, name: p.name, state: p.state, rc: p.rc, metadata: p.metadata, buildId: p.buildId };
}

/**
 * LIST (SPEC §5): `nr` entries from `idx` in upload order, the number remaining
 * and the version stamp. A process without a registry has no payloads.
 */
export async function list(pid: number, idx = 0, nr = Number.POSITIVE_INFINITY): Promise<ListResult> {
  if (!Number.isSafeInteger(idx) || idx < 0)
    throw new XspliceError("EINVAL", `LIST index ${idx} is not >= 0`);
  if (!(nr >= 0)) throw new XspliceError("EINVAL", `LIST count ${nr} is not >= 0`);
  const n = checkPid(pid);
  const snap = readTargetRegistry(n);
  const all = snap?.state.payloads ?? [];
  const page = all.slice(idx, idx + Math.min(nr, all.length));
  return {
    version: snap?.state.version ?? 0,
    payloads: page.map((p) => entry(n, p)),
    remaining: Math.max(0, all.length - idx - page.length),
  };
}

/** One process's payloads, for `listAll`; or, when its registry could not be read, why not. */
export interface ProcessPayloads {
  pid: number;
  version: number;
  payloads: ListEntry[];
  /** Set when the registry is unreadable or forged (`payloads` is then empty). */
  error?: { errno: ErrnoName; message: string };
}

/**
 * Every process that has a registry with payloads (`xsplice list` without a
 * PID), by scanning `/proc/*\/maps` for the registry's name. Processes that
 * vanish or deny access meanwhile are skipped. Any process can map something
 * of the registry's name (issue #11 item 8): one whose registry cannot be read
 * or fails its checks is one entry carrying its error, and the scan goes on.
 */
export async function listAll(): Promise<ProcessPayloads[]> {
  const out: ProcessPayloads[] = [];
  const pids = readdirSync("/proc")
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .sort((a, b) => a - b);
  for (const pid of pids) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/maps`, "utf8");
    } catch {
      continue;
    }
    if (!text.includes(REGISTRY_NAME)) continue;
    try {
      const maps = parseMaps(text).filter(isRegistryMapping);
      if (findRegistry(pid, maps) === undefined) continue;
      const snap = readTargetRegistry(pid, maps);
      if (!snap || snap.state.payloads.length === 0) continue;
      out.push({ pid, version: snap.state.version, payloads: snap.state.payloads.map((p) => entry(pid, p)) });
    } catch (err) {
      if (err instanceof XspliceError && ["ESRCH", "EPERM", "EACCES"].includes(err.errno)) continue;
      const error =
        err instanceof XspliceError
          ? { errno: err.errno, message: err.message }
          : { errno: "EIO" as const, message: String((err as Error)?.message ?? err) };
      out.push({ pid, version: 0, payloads: [], error });
    }
  }
  return out;
}

/**
 * ACTION (SPEC §5): `cmd` on payload `name`, per the action table. UNLOAD
 * frees a CHECKED payload; APPLY, REVERT and REPLACE are the executor's.
 */
export async function action(pid: number, name: string, cmd: Cmd, opts: ActionOptions = {}): Promise<void> {
  if (!(cmd in CMD)) throw new XspliceError("EINVAL", `unknown action ${String(cmd)}`);
  const n = checkPid(pid);
  const session = openTarget(n, { waitMs: opts.waitMs, forPayload: name, context: opts.context });
  try {
    switch (cmd) {
      case "UNLOAD":
        unloadPayload(session, name, { leaveStopped: true });
        return;
      // ---- APPLY / REVERT / REPLACE: the actions engineer's cases (src/core/execute.ts) go here ----
      case "APPLY":
      case "REVERT":
      case "REPLACE":
        runAction(session, name, cmd, {
          timeoutMs: opts.timeoutMs,
          flags: { nodeps: opts.nodeps },
          leaveStopped: true,
        });
        return;
      // ---- end of the executor's cases ----
      default: {
        const never: never = cmd;
        throw new XspliceError("EINVAL", `unknown action ${String(never)}`);
      }
    }
  } finally {
    session.close();
  }
}

/** The errno name of an rc for display (`-11` → `EAGAIN`); see `rcLabel`. */
export const rcName = rcLabel;
