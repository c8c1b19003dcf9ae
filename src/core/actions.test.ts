import assert from "node:assert/strict";
import { test } from "node:test";
import { payloadRecord } from "../../test/helpers/records.ts";
import { XspliceError } from "../errors.ts";
import { commitApplied, commitRc, commitReverted, commitUnloaded, commitUploaded, plan } from "./actions.ts";
import { emptyRegistry, type PayloadRecord, type RegistryState } from "./registry/records.ts";

const OBJ = "aa".repeat(20);

function record(name: string, over: Partial<PayloadRecord> = {}): PayloadRecord {
  return payloadRecord(name, {
    target: OBJ,
    depends: OBJ,
    object: { path: "/srv/app", buildId: OBJ, bias: "0x555555554000" },
    funcs: [
      {
        name: "f",
        oldAddr: "0x1000",
        oldSize: 16,
        newAddr: "0x2000",
        newSize: 8,
        patchAddr: "0x1000",
        patch: "e9fb0f0000",
        undo: "",
      },
    ],
    ...over,
  });
}

function registry(...payloads: PayloadRecord[]): RegistryState {
  let r = emptyRegistry();
  for (const p of payloads) r = commitUploaded(r, p);
  return r;
}

function refuses(fn: () => unknown, errno: string): void {
  assert.throws(fn, (e: unknown) => e instanceof XspliceError && e.errno === errno);
}

test("unknown payload: ENOENT for every command", () => {
  for (const cmd of ["UNLOAD", "REVERT", "APPLY", "REPLACE"] as const)
    refuses(() => plan(registry(), "nope", cmd), "ENOENT");
});

test("UNLOAD: CHECKED unloads, APPLIED is EINVAL", () => {
  const r = registry(record("a"));
  assert.equal(plan(r, "a", "UNLOAD").kind, "unload");
  refuses(() => plan(commitApplied(r, "a", ["55"]), "a", "UNLOAD"), "EINVAL");
});

test("APPLY: CHECKED applies, APPLIED is a no-op", () => {
  const r = registry(record("a"));
  assert.equal(plan(r, "a", "APPLY").kind, "apply");
  assert.equal(plan(commitApplied(r, "a", ["55"]), "a", "APPLY").kind, "noop");
});

test("REVERT: APPLIED reverts, CHECKED is EINVAL", () => {
  const r = registry(record("a"));
  refuses(() => plan(r, "a", "REVERT"), "EINVAL");
  assert.equal(plan(commitApplied(r, "a", ["55"]), "a", "REVERT").kind, "revert");
});

test("REVERT: only the most recently applied payload of an object; others EBUSY", () => {
  let r = registry(record("a"), record("b", { depends: "a-id" }));
  r = commitApplied(r, "a", ["55"]);
  r = commitApplied(r, "b", ["e9"]);
  refuses(() => plan(r, "a", "REVERT"), "EBUSY");
  assert.equal(plan(r, "b", "REVERT").kind, "revert");
});

test("APPLY dependency: first on the object's build-id, then on the last applied payload's; NODEPS skips", () => {
  let r = registry(record("a"), record("b", { depends: "a-id" }), record("c", { depends: OBJ }));
  refuses(() => plan(r, "b", "APPLY"), "EINVAL");
  assert.equal(plan(r, "b", "APPLY", { nodeps: true }).kind, "apply");
  r = commitApplied(r, "a", ["55"]);
  assert.equal(plan(r, "b", "APPLY").kind, "apply");
  refuses(() => plan(r, "c", "APPLY"), "EINVAL");
});

test("REPLACE: reverts every applied payload of the object, most recent first, and checks depends against the object", () => {
  let r = registry(
    record("a"),
    record("b", { depends: "a-id" }),
    record("c"),
    record("d", { depends: "a-id" }),
  );
  r = commitApplied(r, "a", ["55"]);
  r = commitApplied(r, "b", ["e9"]);
  const pl = plan(r, "c", "REPLACE");
  assert.equal(pl.kind, "replace");
  assert.deepEqual(pl.kind === "replace" ? pl.revert.map((p) => p.name) : [], ["b", "a"]);
  refuses(() => plan(r, "d", "REPLACE"), "EINVAL");
  refuses(() => plan(r, "a", "REPLACE"), "EINVAL");
});

test("re-APPLY after REVERT: refused with own writable data, allowed without", () => {
  for (const [own, outcome] of [
    [true, "EINVAL"],
    [false, "apply"],
  ] as const) {
    let r = registry(record("a", { hasOwnWritableData: own }));
    r = commitReverted(commitApplied(r, "a", ["55"]), "a");
    if (outcome === "apply") assert.equal(plan(r, "a", "APPLY").kind, "apply");
    else refuses(() => plan(r, "a", "APPLY"), outcome);
  }
});

test("an action in progress (journaled rc EAGAIN) makes a second action EBUSY", () => {
  const r = commitRc(registry(record("a")), "a", -11);
  const inFlight = {
    ...r,
    journal: { cmd: "APPLY" as const, name: "a", by: 1, writes: [], outcome: r.payloads },
  };
  refuses(() => plan(inFlight, "a", "APPLY"), "EBUSY");
  refuses(() => plan(inFlight, "a", "UNLOAD"), "EBUSY");
});

test("an rc of EAGAIN left by a vetoing pre-hook does not block later actions", () => {
  const r = commitRc(registry(record("a")), "a", -11);
  assert.equal(plan(r, "a", "APPLY").kind, "apply");
  assert.equal(plan(r, "a", "UNLOAD").kind, "unload");
});

test("every commit bumps the LIST version; unload removes the record", () => {
  let r = registry(record("a"));
  const v0 = r.version;
  r = commitApplied(r, "a", ["55"]);
  assert.equal(r.payloads[0]?.state, "APPLIED");
  assert.equal(r.payloads[0]?.funcs[0]?.undo, "55");
  r = commitReverted(r, "a");
  assert.equal(r.payloads[0]?.state, "CHECKED");
  assert.equal(r.payloads[0]?.funcs[0]?.undo, "");
  r = commitUnloaded(r, "a");
  assert.equal(r.payloads.length, 0);
  assert.equal(r.version, v0 + 3);
});
