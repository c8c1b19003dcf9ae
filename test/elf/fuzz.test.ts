/**
 * Mutation fuzz: thousands of random corruptions of real objects, each read
 * in full. Every outcome must be success or an `XspliceError`; anything else
 * (RangeError, TypeError...) fails with the seed and iteration that made it.
 * Seeded, so a failure reproduces with `ELF_FUZZ_SEED=<seed>`; a fixed number
 * of inputs, whatever the machine's speed (the runner's timeout bounds the time).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { type ElfFile, PT, readElf, SHT, writeRelocatable } from "../../src/elf/index.ts";
import { XspliceError } from "../../src/errors.ts";
import { prng } from "../helpers/prng.ts";
import { baseExecutable, baseObject, EHDR, put, SHDR } from "./_corrupt.ts";

const ITERATIONS = 4000;

function readAll(f: ElfFile): void {
  for (const s of f.sections) s.data();
  f.symbols();
  f.dynamicSymbols();
  for (const t of f.sections) if (t.type === SHT.SYMTAB || t.type === SHT.DYNSYM) f.symbolsOf(t);
  f.relocationSections();
  for (const s of f.sections) if (s.type === SHT.NOTE) f.notes(s);
  for (const p of f.programHeaders) if (p.type === PT.NOTE) f.segmentNotes(p);
  f.buildId();
}

const INTERESTING = [
  0, 1, 2, 7, 8, 16, 24, 0x40, 0x7f, 0xff, 0x100, 0xffff, 0xfff1, 0xff00, 0x7fffffff, 0xffffffff,
];

function mutate(base: Uint8Array, rnd: () => number): Uint8Array {
  const b = Uint8Array.from(base);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const value = (): bigint =>
    rnd() < 0.7 ? BigInt(pick(INTERESTING)) : BigInt(Math.floor(rnd() * b.length * 2));
  const dv = new DataView(b.buffer);
  const shoff = b.length >= 64 ? Number(dv.getBigUint64(40, true)) : 0;
  const shnum = b.length >= 64 ? dv.getUint16(60, true) : 0;
  const n = 1 + Math.floor(rnd() * 4);
  let len = b.length;
  for (let k = 0; k < n; k++) {
    const r = rnd();
    if (r < 0.3) {
      // random byte anywhere
      b[Math.floor(rnd() * b.length)] = Math.floor(rnd() * 256);
    } else if (r < 0.45) {
      const [at, w] = pick(Object.values(EHDR));
      put(b, at, w, value() & ((1n << BigInt(w * 8)) - 1n));
    } else if (r < 0.8 && shnum > 0 && shoff + shnum * 64 <= b.length) {
      const i = Math.floor(rnd() * shnum);
      const [at, w] = pick(Object.values(SHDR));
      put(b, shoff + i * 64 + at, w, value() & ((1n << BigInt(w * 8)) - 1n));
    } else if (r < 0.9) {
      // a run of random bytes inside some section's data
      const at = Math.floor(rnd() * b.length);
      for (let j = at; j < Math.min(b.length, at + 1 + Math.floor(rnd() * 16)); j++)
        b[j] = Math.floor(rnd() * 256);
    } else {
      len = Math.floor(rnd() * len);
    }
  }
  return b.subarray(0, len);
}

test(`mutation fuzz: ${ITERATIONS} corruptions give success or XspliceError only`, () => {
  const seed = Number(process.env["ELF_FUZZ_SEED"] ?? 0x5eed1234);
  const rnd = prng(seed);
  const bases = [
    baseObject(),
    baseExecutable(),
    writeRelocatable({
      sections: [
        { name: ".text", data: Uint8Array.of(0xc3, 0x90, 0x90, 0x90) },
        {
          name: ".note.gnu.build-id",
          type: SHT.NOTE,
          addralign: 4,
          data: Uint8Array.of(4, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 0, 0x47, 0x4e, 0x55, 0, 1, 2, 3, 4),
        },
      ],
      symbols: [{ name: "f", section: ".text" }],
      relocations: { ".text": [{ offset: 0n, type: 1, symbol: "f" }] },
    }),
  ];
  const counts = { ok: 0, XspliceError: 0 };
  console.log(`# seed 0x${seed.toString(16)} (ELF_FUZZ_SEED=${seed} replays it)`);
  let i = 0;
  for (; i < ITERATIONS; i++) {
    const input = mutate(bases[i % bases.length]!, rnd);
    try {
      readAll(readElf(input));
      counts.ok++;
    } catch (e) {
      if (!(e instanceof XspliceError)) {
        assert.fail(`seed 0x${seed.toString(16)} iteration ${i}: ${(e as Error)?.stack ?? e}`);
      }
      counts.XspliceError++;
    }
  }
  // The fuzzer must actually reach both outcomes, or it tests nothing.
  assert.ok(counts.ok > 0 && counts.XspliceError > 0, JSON.stringify(counts));
  console.log(`# seed 0x${seed.toString(16)}: ${i} inputs, ${JSON.stringify(counts)}`);
});
