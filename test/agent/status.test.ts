/**
 * What the agent reports (SPEC §14, issue #14): the control socket's JSON
 * lines protocol, `xsplice status [--json]`, `/metrics` as Prometheus text
 * and the audit log, against a live agent whose processes are in each state
 * at once — applied, pending (held by another xsplice, which the agent waits
 * for), failed (held by a foreign tracer: `EBUSY`) — plus a refused file.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { copyFileSync, mkdirSync, renameSync, writeFileSync } from "node:fs";
import { get } from "node:http";
import { connect } from "node:net";
import { basename, join } from "node:path";
import { after, before, test } from "node:test";
import type { AgentStatus } from "../../src/agent/agent.ts";
import { tempDir, xsplice } from "../cli/_run.ts";
import { ROOT } from "../helpers/cc.ts";
import type { Target } from "../helpers/target.ts";
import { auditLines, type RunningAgent, runOnce, startAgent, until } from "./_agent.ts";
import { agentPayload, agentTarget, ask, FIX_VALUE, OLD_VALUE, startTargets } from "./_fixture.ts";

const HOLD = join(ROOT, "test/fixtures/process/hold.ts");

let exe: string;
let fix: string;
const tmp = tempDir("agent-status");
const targets: Target[] = [];
const holders: ChildProcess[] = [];
let agent: RunningAgent | undefined;

before(() => {
  exe = agentTarget();
  fix = agentPayload("fix.c", exe);
});
after(async () => {
  if (agent) console.log(`# agent stderr (test failed with it running):\n${agent.stderr()}`);
  await agent?.kill().catch(() => undefined);
  for (const h of holders) h.kill("SIGKILL");
  await Promise.all(targets.map((t) => t.kill()));
  tmp.remove();
});

/**
 * Hold `pid` stopped with a second tracer. Titled `xsplice`, it is another
 * xsplice run to the agent, which waits for it (SPEC §14: pending); untitled,
 * a foreign tracer, which is `EBUSY` at once.
 */
async function hold(pid: number, asXsplice: boolean): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [...(asXsplice ? ["--title=xsplice"] : []), "--import", "tsx", HOLD, String(pid)],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  holders.push(child);
  await new Promise<void>((resolve, reject) => {
    let buf = "";
    child.stdout!.setEncoding("utf8").on("data", (d: string) => {
      buf += d;
      if (/^held /.test(buf)) resolve();
      else if (buf.includes("\n")) reject(new Error(`hold: ${buf}`));
    });
    child.once("exit", (code) => reject(new Error(`hold exited ${code}: ${buf}`)));
  });
  return child;
}

async function release(h: ChildProcess): Promise<void> {
  const gone = new Promise((r) => h.once("exit", r));
  h.kill("SIGKILL");
  await gone;
}

/** Send `lines` on one connection (all in one write) and resolve with as many answer lines, parsed. */
function converse(socket: string, lines: string[]): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const conn = connect(socket);
    let buf = "";
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`no ${lines.length} answers: ${buf}`));
    }, 60_000);
    conn.setEncoding("utf8");
    conn.on("connect", () => conn.write(lines.map((l) => `${l}\n`).join("")));
    conn.on("data", (d: string) => {
      buf += d;
      const got = buf.split("\n").filter((l) => l !== "");
      if (got.length < lines.length || !buf.endsWith("\n")) return;
      clearTimeout(timer);
      conn.end();
      resolve(got.map((l) => JSON.parse(l)));
    });
    conn.on("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

function scrape(addr: string): Promise<{ type: string; body: string }> {
  return new Promise((resolve, reject) => {
    get(`http://${addr}/metrics`, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (d: string) => {
        body += d;
      });
      res.on("end", () => {
        if (res.statusCode !== 200) reject(new Error(`/metrics: HTTP ${res.statusCode}`));
        else resolve({ type: String(res.headers["content-type"]), body });
      });
    }).on("error", reject);
  });
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * Parse Prometheus text format 0.0.4 strictly enough to catch a malformed
 * exposition: every sample belongs to a family declared by `# TYPE` before
 * it, labels are `k="v"` pairs, values are numbers.
 */
function parseExposition(text: string): { types: Map<string, string>; samples: Sample[] } {
  assert.ok(text.endsWith("\n"), "exposition ends with a newline");
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.slice(0, -1).split("\n")) {
    const t = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (t) {
      assert.ok(!types.has(t[1]!), `TYPE ${t[1]} declared twice`);
      types.set(t[1]!, t[2]!);
      continue;
    }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* \S/.test(line)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    for (const pair of (m[2] ?? "").split(",").filter((p) => p !== "")) {
      const l = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"$/.exec(pair);
      assert.ok(l, `bad label ${pair} in ${line}`);
      labels[l[1]!] = l[2]!;
    }
    const value = m[3] === "+Inf" ? Number.POSITIVE_INFINITY : Number(m[3]);
    assert.ok(!Number.isNaN(value), `bad value in ${line}`);
    const family = m[1]!.replace(/_(bucket|sum|count)$/, "");
    assert.ok(types.has(m[1]!) || types.get(family) === "histogram", `${m[1]} has no TYPE before it`);
    samples.push({ name: m[1]!, labels, value });
  }
  return { types, samples };
}

function one(samples: Sample[], name: string): number {
  const s = samples.filter((x) => x.name === name);
  assert.equal(s.length, 1, `${name}: ${s.length} samples`);
  return s[0]!.value;
}

/** The histogram's buckets are cumulative (monotonic in `le`), end at +Inf = count; returns count. */
function checkHistogram(samples: Sample[], name: string): number {
  const buckets = samples
    .filter((s) => s.name === `${name}_bucket`)
    .map((s) => ({
      le: s.labels["le"] === "+Inf" ? Number.POSITIVE_INFINITY : Number(s.labels["le"]),
      n: s.value,
    }));
  assert.ok(buckets.length >= 2, "histogram has buckets");
  for (let i = 1; i < buckets.length; i++) {
    assert.ok(buckets[i]!.le > buckets[i - 1]!.le, `bucket bounds ascend: ${JSON.stringify(buckets)}`);
    assert.ok(buckets[i]!.n >= buckets[i - 1]!.n, `bucket counts are cumulative: ${JSON.stringify(buckets)}`);
  }
  assert.equal(buckets.at(-1)!.le, Number.POSITIVE_INFINITY, "last bucket is +Inf");
  const count = one(samples, `${name}_count`);
  assert.equal(buckets.at(-1)!.n, count, "+Inf bucket = count");
  const sum = one(samples, `${name}_sum`);
  assert.ok(sum >= 0 && (count > 0 || sum === 0), `sum ${sum} for count ${count}`);
  return count;
}

/** The status with what changes by itself (the scan counter) taken out, to compare two reads. */
function steady(s: AgentStatus): unknown {
  return { ...s, agent: { ...s.agent, scans: 0 } };
}

function cell(s: AgentStatus, pid: number): AgentStatus["processes"][number]["payloads"] {
  return s.processes.find((p) => p.pid === pid)?.payloads ?? [];
}

test("status over the socket and from `xsplice status [--json]`, /metrics, and the audit log", {
  timeout: 180_000,
}, async () => {
  const dir = join(tmp.dir, "d");
  const state = join(tmp.dir, "s");
  mkdirSync(dir);
  mkdirSync(state);
  // Three processes before the agent: none is wanted yet, so none is touched at start.
  const [a, b, c] = await startTargets(exe, 3, targets);
  agent = await startAgent(dir, state, ["--metrics", "127.0.0.1:0", "-j", "2"]);
  assert.match(agent.metrics ?? "", /^127\.0\.0\.1:\d+$/, agent.stderr());
  assert.notEqual(agent.metrics, "127.0.0.1:0", "the bound port is reported, not 0");

  // A foreign tracer on b (EBUSY at once), another "xsplice" on c (the agent waits for it: pending).
  const hb = await hold(b!.pid, false);
  const hc = await hold(c!.pid, true);
  writeFileSync(join(dir, ".bad.tmp"), "not a payload");
  renameSync(join(dir, ".bad.tmp"), join(dir, "bad.xsplice"));
  copyFileSync(fix, join(dir, ".fix.tmp"));
  renameSync(join(dir, ".fix.tmp"), join(dir, "fix.xsplice"));

  // No rescan requests here: a rescan answers after the scan, which waits for c's holder.
  let st: AgentStatus | undefined;
  await until("a applied, b failed, c pending", async () => {
    st = await agent!.status();
    return (
      cell(st, a!.pid)[0]?.status === "applied" &&
      cell(st, b!.pid)[0]?.status === "failed" &&
      cell(st, c!.pid)[0]?.status === "pending"
    );
  });
  const regName = st!.payloads[0]!.registryName;
  assert.match(regName, /^fix@[0-9a-f]{12}$/);
  assert.deepEqual(st!.payloads, [
    { name: "fix", file: join(dir, "fix.xsplice"), target: st!.payloads[0]!.target, registryName: regName },
  ]);
  assert.match(st!.payloads[0]!.target, /^[0-9a-f]{40}$/);
  assert.deepEqual(
    st!.rejected.map((r) => [r.file.replace(/.*\//, ""), r.error]),
    [["bad.xsplice", "EINVAL"]],
    JSON.stringify(st!.rejected),
  );
  assert.equal(st!.agent.pid, agent.child.pid);
  assert.equal(st!.agent.dir, dir);
  assert.equal(st!.agent.gate, "on");
  assert.ok(!Number.isNaN(Date.parse(st!.agent.since)));
  assert.match(cell(st!, b!.pid)[0]!.error ?? "", /^EBUSY: /);
  assert.equal((await ask(a!)).value, FIX_VALUE);

  // The protocol: requests pipelined on one connection are answered in order, one line each.
  const answers = await converse(agent.socket, [
    JSON.stringify({ cmd: "status" }),
    JSON.stringify({ cmd: "frobnicate" }),
    "this is not JSON",
    "null",
    JSON.stringify({ cmd: "status" }),
  ]);
  assert.equal(answers[0]!["ok"], true);
  assert.equal((answers[0]!["status"] as AgentStatus).agent.pid, agent.child.pid);
  for (const bad of answers.slice(1, 4)) {
    assert.equal(bad["ok"], false, JSON.stringify(bad));
    assert.equal(bad["error"], "EINVAL", JSON.stringify(bad));
    assert.equal(typeof bad["message"], "string");
  }
  assert.match(String(answers[1]!["message"]), /frobnicate/);
  assert.equal(answers[4]!["ok"], true);
  const long = await converse(agent.socket, ["x".repeat(10_000)]);
  assert.deepEqual([long[0]!["ok"], long[0]!["error"]], [false, "EINVAL"]);

  // `xsplice status --json` is the socket's status; the text shows every cell. Compared to a
  // read before and after it that agree (the state may move on while the CLI starts).
  for (const json of [true, false]) {
    for (;;) {
      const before1 = steady(await agent.status());
      const r = await xsplice(["status", "--socket", agent.socket, ...(json ? ["--json"] : [])]);
      const after1 = await agent.status();
      assert.equal(r.status, 0, r.stderr);
      if (JSON.stringify(before1) !== JSON.stringify(steady(after1))) continue;
      if (json) assert.deepEqual(steady(JSON.parse(r.stdout) as AgentStatus), before1);
      else {
        const lines = r.stdout.split("\n");
        assert.match(lines[0]!, new RegExp(`^agent ${agent.child.pid}: .*1 payload\\(s\\), exec gate on$`));
        assert.ok(
          lines.some((l) => /^refused .*bad\.xsplice: EINVAL: /.test(l)),
          r.stdout,
        );
        for (const p of after1.processes)
          for (const x of p.payloads) {
            const row = lines.find((l) => l.startsWith(`${p.pid} `) && l.includes(` ${x.name} `));
            assert.ok(row, `no row for ${p.pid} ${x.name}:\n${r.stdout}`);
            assert.match(row!, new RegExp(` ${x.status}( \\(${x.error ? "EBUSY" : ""}|$)`), row);
          }
      }
      break;
    }
  }
  const none = await xsplice(["status", "--socket", join(state, "nobody.sock")]);
  assert.equal(none.status, 1);
  assert.match(none.stderr.trim(), /^xsplice: .*ESRCH.*nobody\.sock/);
  assert.equal(none.stderr.trim().split("\n").length, 1, none.stderr);

  // Let the holders go: the agent converges b and c; then a new start is parked and patched.
  await release(hb);
  await release(hc);
  await until(
    "every process applied",
    async () => {
      const s = await agent!.status();
      return [a, b, c].every((t) => cell(s, t!.pid)[0]?.status === "applied");
    },
    agent,
  );
  for (const t of [b, c]) assert.equal((await ask(t!)).value, FIX_VALUE);
  // A rescan answers after its scan; a status sent behind it on the same connection still comes second.
  const [rescanned, after2] = await converse(agent.socket, [
    JSON.stringify({ cmd: "rescan" }),
    JSON.stringify({ cmd: "status" }),
  ]);
  assert.deepEqual(rescanned, { ok: true });
  assert.equal(after2!["ok"], true);
  assert.ok((after2!["status"] as AgentStatus).agent.scans > st!.agent.scans);
  assert.equal(await runOnce(exe), `first=${FIX_VALUE} old_calls=0\n`);
  assert.notEqual((await ask(a!)).value, OLD_VALUE);

  // /metrics agrees with the audit log: one apply observed per process brought up to date.
  await agent.rescan();
  const { type, body } = await scrape(agent.metrics!);
  assert.match(type, /^text\/plain; version=0\.0\.4/);
  const { types, samples } = parseExposition(body);
  assert.equal(types.get("xsplice_apply_seconds"), "histogram");
  assert.equal(types.get("xsplice_failures_total"), "counter");
  const audit = auditLines(agent.audit);
  const loads = audit.filter((l) => l.what.action === "load" && l.result === "ok");
  const failures = audit.filter((l) => l.what.action !== "refuse" && l.result !== "ok");
  // a, b and c, and the one started under the gate.
  assert.equal(new Set(loads.map((l) => l.what.pid)).size, 4, JSON.stringify(loads));
  assert.equal(checkHistogram(samples, "xsplice_apply_seconds"), loads.length);
  assert.equal(one(samples, "xsplice_payloads"), 1);
  assert.equal(one(samples, "xsplice_payloads_rejected"), 1);
  assert.equal(one(samples, "xsplice_processes_patched"), 3, body);
  // b's EBUSY at least (c's wait may also have run out before its holder went).
  assert.ok(failures.length >= 1, JSON.stringify(failures));
  assert.equal(one(samples, "xsplice_failures_total"), failures.length);
  assert.equal(
    one(samples, "xsplice_actions_total"),
    audit.filter((l) => l.what.action !== "refuse" && l.what.action !== "converge").length,
  );
  assert.equal(one(samples, "xsplice_started_parked_total"), 1);

  // The audit log: JSON lines, each saying who, what, when and the result.
  const t0 = Date.parse(st!.agent.since);
  for (const l of audit) {
    assert.equal(l.who.agent, agent.child.pid);
    assert.equal(l.who.uid, process.getuid!());
    assert.ok(Date.parse(l.time) >= t0 - 1000 && Date.parse(l.time) <= Date.now(), l.time);
    assert.match(l.result, /^(ok|E[A-Z]+)$/);
    if (l.result !== "ok") assert.equal(typeof l.message, "string");
  }
  assert.ok(
    audit.some(
      (l) => l.what.action === "refuse" && l.result === "EINVAL" && /bad\.xsplice$/.test(l.what.file ?? ""),
    ),
  );
  const bFail = audit.find((l) => l.what.pid === b!.pid && l.result !== "ok");
  assert.equal(bFail?.result, "EBUSY", JSON.stringify(bFail));
  assert.equal(bFail?.what.payload ?? regName, regName);
  for (const l of loads) {
    assert.equal(l.what.payload, regName);
    assert.equal(l.what.comm, basename(exe).slice(0, 15)); // comm is at most 15 bytes
  }

  assert.equal(await agent.stop(), 0, agent.stderr());
  agent = undefined;
});
