import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BoundedCache } from "./bounded-cache.ts";

describe("BoundedCache", () => {
  it("keeps at most `max` entries, dropping the least recently used", () => {
    const c = new BoundedCache<string, number>(2);
    c.set("a", 1);
    c.set("b", 2);
    assert.equal(c.get("a"), 1); // a is now the most recent
    c.set("c", 3);
    assert.equal(c.size, 2);
    assert.equal(c.get("b"), undefined);
    assert.equal(c.get("a"), 1);
    assert.equal(c.get("c"), 3);
  });

  it("getOrSet makes a missing entry once", () => {
    const c = new BoundedCache<number, string>(4);
    let made = 0;
    const make = () => `v${++made}`;
    assert.equal(c.getOrSet(1, make), "v1");
    assert.equal(c.getOrSet(1, make), "v1");
    assert.equal(made, 1);
  });

  it("refuses a bound below one", () => {
    assert.throws(() => new BoundedCache(0), RangeError);
  });
});
