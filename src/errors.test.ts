import assert from "node:assert/strict";
import { test } from "node:test";
import { ERRNO, elfError, errnoName, isRetryable, XspliceError } from "./errors.ts";

test("XspliceError carries errno name, number and negative rc", () => {
  const e = new XspliceError("EBUSY", "handle_request is on the stack of thread 4247", { tid: 4247 });
  assert.equal(e.errno, "EBUSY");
  assert.equal(e.code, 16);
  assert.equal(e.rc, -16);
  assert.equal(e.where.tid, 4247);
  assert.ok(e instanceof Error);
});

test("elfError names the offset and the value in hex", () => {
  const e = elfError("EINVAL", 0x40, "section header entry size", 32);
  assert.equal(e.message, "section header entry size (0x20) at offset 0x40");
  assert.equal(e.where.offset, 0x40);
});

test("errnoName maps numbers both signs, and unknown to undefined", () => {
  assert.equal(errnoName(22), "EINVAL");
  assert.equal(errnoName(-129), "EKEYREJECTED");
  assert.equal(errnoName(9999), undefined);
  for (const [name, n] of Object.entries(ERRNO)) assert.equal(errnoName(n), name);
});

test("only EAGAIN and EBUSY are retryable", () => {
  assert.ok(isRetryable("EAGAIN"));
  assert.ok(isRetryable("EBUSY"));
  assert.ok(!isRetryable("EINVAL"));
});
