/**
 * Mutation fuzzing of readPayload (STYLE §11): thousands of seeded random
 * corruptions of valid payloads built from C. Each must either be accepted
 * or refused with an XspliceError; no other exception may escape, and no
 * input may hang the reader. Accepted mutants also go through `inspect`'s
 * formatting, which walks every part of the model.
 */
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { test } from "node:test";
import { inspectJson, inspectText } from "../../src/cli/inspect.ts";
import { readElf } from "../../src/elf/index.ts";
import { XspliceError } from "../../src/errors.ts";
import { readPayload } from "../../src/payload/read.ts";
import { keyIdOf, signPayload } from "../../src/payload/signature.ts";
import { fixturePayloadBytes } from "../helpers/payload-fixtures.ts";
import { prng as rng } from "../helpers/prng.ts";

const INTERESTING: bigint[] = [
  0n,
  1n,
  3n,
  7n,
  8n,
  0x18n,
  0x40n,
  0x68n,
  0x7fn,
  0x80n,
  0xffn,
  0x100n,
  0xffffn,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  0x100000000n,
  0x7fffffffffffffffn,
  0x8000000000000000n,
  0xffffffffffffffffn,
];

interface Corpus {
  name: string;
  bytes: Uint8Array;
  /** Byte ranges worth hitting more often: file header, section headers, the payload's own tables. */
  hot: [number, number][];
}

function corpus(name: string, bytes: Uint8Array): Corpus {
  const elf = readElf(bytes);
  const hot: [number, number][] = [
    [0, 64],
    [elf.header.shoff, elf.header.shoff + elf.header.shnum * elf.header.shentsize],
  ];
  for (const s of elf.sections) {
    if (/xsplice|livepatch|note|modinfo|symtab|strtab|rodata/.test(s.name) && s.size > 0) {
      hot.push([s.offset, s.offset + s.size]);
    }
  }
  return { name, bytes, hot };
}

function mutate(c: Corpus, r: () => number): Uint8Array {
  let b = c.bytes.slice();
  const n = 1 + Math.floor(r() * 3);
  for (let k = 0; k < n; k++) {
    const pick = r();
    const range = c.hot[Math.floor(r() * c.hot.length)] ?? [0, b.length];
    const inHot = r() < 0.75;
    const lo = inHot ? range[0] : 0;
    const hi = Math.min(inHot ? range[1] : b.length, b.length);
    const at = lo + Math.floor(r() * Math.max(1, hi - lo));
    if (pick < 0.35) {
      // flip a few bits
      if (at < b.length) b[at] = (b[at] ?? 0) ^ (1 << Math.floor(r() * 8));
    } else if (pick < 0.8) {
      // an interesting value of a random width
      const width = [1, 2, 4, 8][Math.floor(r() * 4)] ?? 8;
      const v = INTERESTING[Math.floor(r() * INTERESTING.length)] ?? 0n;
      for (let i = 0; i < width && at + i < b.length; i++) b[at + i] = Number((v >> BigInt(8 * i)) & 0xffn);
    } else if (pick < 0.9) {
      // copy a chunk from elsewhere (e.g. one section header over another)
      const from = Math.floor(r() * b.length);
      const len = 1 + Math.floor(r() * 64);
      b.copyWithin(at, from, Math.min(from + len, b.length));
    } else if (pick < 0.97) {
      b = b.slice(0, Math.floor(r() * b.length));
    } else {
      const tail = Uint8Array.from({ length: 1 + Math.floor(r() * 100) }, () => Math.floor(r() * 256));
      const out = new Uint8Array(b.length + tail.length);
      out.set(b);
      out.set(tail, b.length);
      b = out;
    }
  }
  return b;
}

test("seeded random corruptions raise only XspliceError", { timeout: 60_000 }, () => {
  const ed = generateKeyPairSync("ed25519");
  const basic = fixturePayloadBytes({ source: "payload/xsplice-basic.c" });
  const corpora = [
    corpus("xsplice-basic", basic),
    corpus("hooks-only", fixturePayloadBytes({ source: "payload/hooks-only.c" })),
    corpus("livepatch-v2", fixturePayloadBytes({ source: "payload/livepatch-v2.c", format: "livepatch" })),
  ];
  // A signed payload: the trailer is fuzzed too (only its ELF part is hot-listed).
  const signed = signPayload(basic, ed.privateKey, keyIdOf(ed.publicKey), "fuzz");
  corpora.push({ ...corpus("signed", basic), name: "signed", bytes: signed });
  corpora[3]?.hot.push([basic.length, signed.length]);

  const perCorpus = 3000;
  const errnos = new Map<string, number>();
  let accepted = 0;
  const t0 = performance.now();
  for (const [ci, c] of corpora.entries()) {
    const r = rng(0x5eed + ci);
    for (let i = 0; i < perCorpus; i++) {
      const bytes = mutate(c, r);
      try {
        const p = readPayload(bytes);
        inspectText("fuzz", p);
        JSON.stringify(inspectJson(p));
        accepted++;
      } catch (err) {
        if (!(err instanceof XspliceError)) {
          assert.fail(`${c.name} mutant ${i} threw ${(err as Error)?.stack ?? String(err)}`);
        }
        assert.ok(err.message.length > 0 && !err.message.includes("\n"), `one-line message: ${err.message}`);
        errnos.set(err.errno, (errnos.get(err.errno) ?? 0) + 1);
      }
    }
  }
  const ms = performance.now() - t0;
  const total = perCorpus * corpora.length;
  console.log(
    `# fuzz: ${total} mutants (seeds 0x5eed..0x${(0x5eed + corpora.length - 1).toString(16)}, fixed) in ${ms.toFixed(0)} ms; accepted ${accepted}; ${JSON.stringify(Object.fromEntries(errnos))}`,
  );
  // The mutations reach past the first check: both outcomes, and several errnos.
  assert.ok(accepted > total * 0.02, `some mutants are still valid payloads (${accepted})`);
  assert.ok((errnos.get("EINVAL") ?? 0) > total * 0.2);
  assert.ok((errnos.get("EOPNOTSUPP") ?? 0) > 0);
});
