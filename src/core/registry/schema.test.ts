import assert from "node:assert/strict";
import { test } from "node:test";
import { prng } from "../../../test/helpers/prng.ts";
import { payloadRecord } from "../../../test/helpers/records.ts";
import { XspliceError } from "../../errors.ts";
import type { RegistryState } from "./records.ts";
import { checkRegistryState } from "./schema.ts";

/** Every optional field main writes now: region digests, a journal with hooks and regions. */
function fullState(cmd: "APPLY" | "UPLOAD" | "UNLOAD"): RegistryState {
  const p = payloadRecord("fix-1", {
    state: "APPLIED",
    rc: -125,
    format: "livepatch",
    buildId: "9f3a",
    object: { path: "/usr/bin/server", buildId: "ab12", bias: "0x5555554000" },
    regions: [
      { kind: "rx", addr: "0x7f0000000000", size: 4096, digest: "a".repeat(64) },
      { kind: "rw", addr: "0x7f0000001000", size: 4096 },
    ],
    exports: { helper: "0x7f0000000040" },
    funcs: [
      {
        name: "handle_echo",
        oldAddr: "0x555555555136",
        oldSize: 120,
        newAddr: "0x7f0000000000",
        newSize: 80,
        patchAddr: "0x55555555513a",
        patch: "e9c1aeaaaa",
        undo: "554889e541",
        expect: "f30f1efa55",
      },
    ],
    hooks: { load: ["0x7f0000000100"], unload: [], preapply: "0x7f0000000200", revert: "0x7f0000000300" },
    metadata: { cve: "CVE-2026-0001", note: "two\nlines" },
    hasOwnWritableData: true,
    reverted: true,
    appliedSeq: 3,
    payloadStruct: "0x7f0000001f00",
  });
  return {
    version: 12,
    payloads: [p],
    nextSeq: 4,
    journal: {
      cmd,
      name: "fix-1",
      by: 4242,
      writes: [
        {
          addr: "0x55555555513a",
          before: "554889e541",
          after: "e9c1aeaaaa",
          guardStart: "0x555555555136",
          guardEnd: "0x5555555551ae",
        },
      ],
      outcome: [p],
      hooks: [{ payload: "fix-1", kind: "load", addr: "0x7f0000000100", phase: "running" }],
      regions: [{ kind: "rx", addr: "0x7f0000000000", size: 4096, digest: "b".repeat(64) }],
    },
  };
}

test("accepts what xsplice writes: digests, journal hooks and regions, UPLOAD and UNLOAD journals", () => {
  // A field a newer xsplice may add is kept, not refused.
  const newer = fullState("APPLY") as unknown as { payloads: Record<string, unknown>[] };
  newer.payloads[0]!["hooksRan"] = ["load"];
  assert.deepEqual(checkRegistryState(JSON.parse(JSON.stringify(newer))), newer);
  for (const cmd of ["APPLY", "UPLOAD", "UNLOAD"] as const) {
    const s = fullState(cmd);
    assert.deepEqual(checkRegistryState(JSON.parse(JSON.stringify(s))), s);
  }
  assert.ok(checkRegistryState({ version: 0, payloads: [], nextSeq: 1 }));
});

test("refuses forged shapes with one EINVAL naming the field", () => {
  // biome-ignore lint/suspicious/noExplicitAny: the cases forge arbitrary shapes
  const cases: [string, (s: any) => void, RegExp][] = [
    ["payloads not a list", (s) => (s.payloads = { a: 1 }), /state\.payloads is object, not a list/],
    ["a null payload", (s) => s.payloads.push(null), /state\.payloads\[1\] is null/],
    [
      "an address that BigInt cannot read",
      (s) => (s.payloads[0].funcs[0].oldAddr = "0xzz"),
      /funcs\[0\]\.oldAddr/,
    ],
    ["a control character in a name", (s) => (s.payloads[0].name = "a\x1bb"), /payloads\[0\]\.name/],
    [
      "too many unknown fields",
      (s) => {
        for (let i = 0; i < 17; i++) s.payloads[0][`x${i}`] = i;
      },
      /payloads\[0\] has 17 unknown fields/,
    ],
    ["a missing field", (s) => delete s.payloads[0].regions, /lacks field 'regions'/],
    ["a huge string", (s) => (s.payloads[0].funcs[0].name = "x".repeat(5000)), /length 5000/],
    ["odd hex bytes", (s) => (s.journal.writes[0].before = "abc"), /journal\.writes\[0\]\.before/],
    ["an unknown journal command", (s) => (s.journal.cmd = "FORMAT"), /journal\.cmd/],
    ["a positive rc", (s) => (s.payloads[0].rc = 5), /rc is 5/],
    ["two payloads of one name", (s) => s.payloads.push(s.payloads[0]), /holds 'fix-1' twice/],
  ];
  for (const [what, mutate, message] of cases) {
    const s = JSON.parse(JSON.stringify(fullState("APPLY")));
    mutate(s);
    assert.throws(
      () => checkRegistryState(s),
      (e: unknown) => e instanceof XspliceError && e.errno === "EINVAL" && message.test(e.message),
      what,
    );
  }
});

test("random mutations of a valid state give a state or an EINVAL, nothing else", () => {
  const seed = Number(process.env.SEED ?? Date.now() % 2 ** 31);
  console.log(`seed ${seed}`);
  const rand = prng(seed);
  const junk = [null, 0, -1, 1e300, "", "0x", "\x1b[2J", [], {}, true, "x".repeat(200)];
  const paths = (v: unknown, at: (string | number)[] = []): (string | number)[][] =>
    typeof v === "object" && v !== null
      ? [at, ...Object.entries(v).flatMap(([k, x]) => paths(x, [...at, Array.isArray(v) ? Number(k) : k]))]
      : [at];
  let refused = 0;
  for (let i = 0; i < 2000; i++) {
    const s = JSON.parse(JSON.stringify(fullState("APPLY")));
    const all = paths(s).filter((p) => p.length > 0);
    const path = all[Math.floor(rand() * all.length)]!;
    let o = s;
    for (const k of path.slice(0, -1)) o = o[k];
    o[path.at(-1)!] = junk[Math.floor(rand() * junk.length)];
    try {
      checkRegistryState(s);
    } catch (e) {
      assert.ok(e instanceof XspliceError && e.errno === "EINVAL", `seed ${seed} mutation ${i}: ${e}`);
      refused++;
    }
  }
  assert.ok(refused > 1000, `seed ${seed}: only ${refused} of 2000 mutations refused`);
});
