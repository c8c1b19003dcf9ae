import assert from "node:assert/strict";
import { test } from "node:test";
import { EM, flagNames, nameOf, PF, R_X86_64, SHF, SHT, STB, STT } from "./defs.ts";

test("nameOf gives the key for a known value", () => {
  assert.equal(nameOf(SHT, 1), "PROGBITS");
  assert.equal(nameOf(EM, 62), "X86_64");
  assert.equal(nameOf(R_X86_64, 42), "REX_GOTPCRELX");
  assert.equal(nameOf(R_X86_64, 1), "64");
});

test("nameOf prefers the specific name over the range start it shares a value with", () => {
  assert.equal(nameOf(STT, 10), "GNU_IFUNC");
  assert.equal(nameOf(STB, 10), "GNU_UNIQUE");
  assert.equal(nameOf(SHT, 0x6fffffff), "VERSYM");
});

test("nameOf prints unnamed values in a range as start+offset, others as numbers, never throws", () => {
  assert.equal(nameOf(SHT, 0x60000005), "LOOS+0x5");
  assert.equal(nameOf(SHT, 0x70000010), "LOPROC+0x10");
  assert.equal(nameOf(SHT, 0x80000001), "LOUSER+0x1");
  assert.equal(nameOf(SHT, 20), "20");
  assert.equal(nameOf(R_X86_64, 999), "999");
  assert.equal(nameOf(EM, -1), "-1");
  assert.equal(nameOf(SHT, 2n ** 70n), (2n ** 70n).toString());
});

test("flagNames lists set bits and the unnamed rest", () => {
  assert.deepEqual(flagNames(SHF, SHF.ALLOC | SHF.EXECINSTR), ["ALLOC", "EXECINSTR"]);
  assert.deepEqual(flagNames(SHF, 0x100001n), ["WRITE", "0x100000"]);
  assert.deepEqual(flagNames(PF, PF.R | PF.X), ["X", "R"]);
  assert.deepEqual(flagNames(PF, 0), []);
});
