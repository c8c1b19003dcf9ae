/**
 * The `xsplice diff` catalogue (SPEC §13): for each case of
 * test/fixtures/diff/, build the program and its patched twin, start the
 * program, check its answer, `xsplice diff` the objects, `xsplice load` the
 * payload into the running program, check the new answer, `xsplice revert`,
 * check the old one — all through the command line, as a user runs it.
 */
import assert from "node:assert/strict";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { xsplice } from "../../cli/_run.ts";
import { tool } from "../../helpers/cc.ts";
import { startTarget, type Target } from "../../helpers/target.ts";
import { buildCase } from "./_cases.ts";

interface Case {
  name: string;
  /** Answers before the load, after it, and after the revert. */
  answers: [string, string, string];
  /** Functions the payload must carry, with their status. */
  funcs: Record<string, "changed" | "new">;
  /** Extra flags for diff. */
  flags?: string[];
  /** A line the program prints while the payload is applied (a hook's). */
  hookLine?: RegExp;
  hooks?: string[];
  /** Functions with no code of their own reported as inlined into changed callers (default none). */
  inlined?: { name: string; callers: string[] }[];
}

const CASES: Case[] = [
  { name: "changed-function", answers: ["41", "42", "41"], funcs: { compute: "changed" } },
  { name: "new-function", answers: ["41", "81", "41"], funcs: { compute: "changed", twice: "new" } },
  // seen starts at 100 in the payload's own copy; fix_total is new and zero.
  { name: "new-variables", answers: ["41", "1052", "41"], funcs: { compute: "changed" } },
  // The payload's tick() counts on in the target's own static: 1, then 2 * 100, then 3.
  { name: "static-local", answers: ["1", "200", "3"], funcs: { tick: "changed" } },
  { name: "string-literal", answers: ["hello", "hello, patched", "hello"], funcs: { greet: "changed" } },
  { name: "libc-call", answers: ["quiet", "QUIET/5", "quiet"], funcs: { shout: "changed" } },
  { name: "shared-library", answers: ["41", "400", "41"], funcs: { lib_compute: "changed" } },
  {
    name: "line-only",
    answers: ["41 1", "42 1", "41 1"],
    funcs: { compute: "changed", where: "changed" },
  },
  {
    name: "line-only",
    answers: ["41 1", "42 1", "41 1"],
    funcs: { compute: "changed" },
    flags: ["--ignore-line-changes"],
  },
  { name: "cold-split", answers: ["21", "35", "21"], funcs: { check: "changed" } },
  {
    name: "inlined-helper",
    answers: ["81", "161", "81"],
    funcs: { compute: "changed" },
    inlined: [{ name: "scale", callers: ["compute"] }],
  },
  // scale() has no copy of its own: the report names it, and its two callers carry the fix.
  {
    name: "inlined-everywhere",
    answers: ["81 81", "161 163", "81 81"],
    funcs: { compute: "changed", compute_more: "changed" },
    inlined: [{ name: "scale", callers: ["compute", "compute_more"] }],
  },
  {
    name: "preapply-hook",
    answers: ["41", "42", "41"],
    funcs: { compute: "changed", announce: "new" },
    hookLine: /^hook: preapply diff-preapply-hook$/,
    hooks: ["preapply"],
  },
];

const running: Target[] = [];
const outputs: string[] = [];
after(async () => {
  for (const t of running) await t.kill();
  for (const o of outputs) rmSync(o, { force: true });
});

async function ask(t: Target): Promise<string> {
  const from = t.lines.length;
  t.send("x");
  const line = await t.waitFor(/^out: /, { from });
  return line.slice("out: ".length);
}

function diffArgs(c: ReturnType<typeof buildCase>, out: string, flags: string[]): string[] {
  const args = ["diff", "--target", c.target, "-o", out, "--json", ...flags];
  for (const p of c.pairs) args.push("--orig", p.orig, "--patched", p.patched);
  return args;
}

describe("diff catalogue: build, run, diff, load, revert", () => {
  for (const k of CASES) {
    const label = `${k.name}${k.flags ? ` ${k.flags.join(" ")}` : ""}`;
    test(label, async () => {
      const c = buildCase(k.name);
      const out = join(c.dir, `fix${k.flags ? "-flags" : ""}.${process.pid}.xsplice`);
      outputs.push(out);
      const t = await startTarget(c.exe);
      running.push(t);
      try {
        assert.equal(await ask(t), k.answers[0], "the unpatched program's answer");
        const d = await xsplice(diffArgs(c, out, k.flags ?? []));
        assert.equal(d.status, 0, d.stderr);
        const doc = JSON.parse(d.stdout) as {
          funcs: { name: string; status: string; reason: string }[];
          hooks: string[];
          inlined: { name: string; callers: string[] }[];
          stats: { changed: number; new: number };
        };
        const carried = Object.fromEntries(doc.funcs.map((f) => [f.name, f.status]));
        assert.deepEqual(carried, k.funcs, d.stdout);
        assert.deepEqual(doc.hooks, k.hooks ?? []);
        assert.deepEqual(doc.inlined, k.inlined ?? [], "functions reported as inlined everywhere");
        if (k.name === "line-only" && k.flags === undefined) {
          assert.equal(doc.funcs.find((f) => f.name === "where")?.reason, "line numbers only");
        }
        const name = `diff-${k.name}`;
        const from = t.lines.length;
        const load = await xsplice(["load", String(t.pid), out, "--name", name]);
        assert.equal(load.status, 0, load.stderr);
        if (k.hookLine) await t.waitFor(k.hookLine, { from });
        assert.equal(await ask(t), k.answers[1], "the patched answer");
        const revert = await xsplice(["revert", String(t.pid), name]);
        assert.equal(revert.status, 0, revert.stderr);
        assert.equal(await ask(t), k.answers[2], "the answer after the revert");
      } finally {
        await t.kill();
      }
    });
  }

  test("inlined-everywhere: the text report names scale and the callers that carry it; scale has no symbol", async () => {
    const c = buildCase("inlined-everywhere");
    assert.doesNotMatch(tool("nm", [c.pairs[0]!.patched]), /\bscale\b/);
    const out = join(c.dir, `text.${process.pid}.xsplice`);
    outputs.push(out);
    const d = await xsplice(diffArgs(c, out, []).filter((a) => a !== "--json"));
    assert.equal(d.status, 0, d.stderr);
    assert.match(
      d.stdout,
      /^ {2}inlined +scale: no code of its own: inlined into compute, compute_more, which all changed and are patched instead/m,
    );
    assert.match(d.stdout, /functions: 4 examined, 2 changed, 0 new/);
  });

  test("cold-split really is split: check.cold is a function of its own", () => {
    const c = buildCase("cold-split");
    assert.match(tool("nm", [c.pairs[0]!.orig]), / t check\.cold$/m);
  });
});

describe("diff refusals: one line naming the symbol, nothing written", () => {
  const refusals: [string, RegExp][] = [
    ["too-small", /EOPNOTSUPP: refused: hook: changed function is 1 bytes, too small for a trampoline/],
    ["changed-data", /EOPNOTSUPP: refused: limit: initialised data changed/],
  ];
  for (const [name, message] of refusals) {
    test(name, async () => {
      const c = buildCase(name);
      const out = join(c.dir, `refused.${process.pid}.xsplice`);
      const d = await xsplice(diffArgs(c, out, []).filter((a) => a !== "--json"));
      assert.notEqual(d.status, 0);
      assert.match(d.stderr, message);
      assert.equal(d.stderr.trim().split("\n").length, 1, d.stderr);
      assert.equal(existsSync(out), false, "nothing written");
    });
  }
});
