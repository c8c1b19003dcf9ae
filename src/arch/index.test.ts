import assert from "node:assert/strict";
import { test } from "node:test";
import { XspliceError } from "../errors.ts";
import { archFor } from "./index.ts";

test("archFor: x86-64 is supported, arm64 and others are EOPNOTSUPP", () => {
  const a = archFor(62);
  assert.equal(a.machine, 62);
  assert.equal(a.trampoline(0x1000n, 0x2000n).length, a.trampolineSize);
  assert.equal(a.absoluteStub(0x1000n).length, a.stubSize);
  for (const m of [183, 3, 0]) {
    assert.throws(
      () => archFor(m),
      (e) => e instanceof XspliceError && e.errno === "EOPNOTSUPP" && e.message.includes(String(m)),
    );
  }
});
