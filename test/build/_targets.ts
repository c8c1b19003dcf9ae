/**
 * Targets and oracles shared by the `xsplice build` tests: the fixture target
 * built the way SPEC §12 asks live-patchable programs to be built, a CET
 * variant, one without a build-id, and `nm`/`readelf` readings of them.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileC, FIXTURES, tool } from "../helpers/cc.ts";

/** gcc flags of a target meant for live patching (SPEC §12), PIE. */
export const TARGET_FLAGS = [
  "-O2",
  "-g",
  "-flive-patching=inline-clone",
  "-fno-omit-frame-pointer",
  "-fPIE",
  "-pie",
  "-Wl,--build-id",
];

const TARGET_SOURCES = ["build/target-main.c", "build/target-util.c"];

/** The fixture target, built (or reused from the cache) with `extra` flags. */
export function buildTarget(name: string, extra: string[] = []): string {
  return compileC({ sources: TARGET_SOURCES, kind: "exe", flags: [...TARGET_FLAGS, ...extra], name });
}

/** A payload source under test/fixtures/build/. */
export function fixture(name: string): string {
  return join(FIXTURES, "build", name);
}

/** A fresh directory for a test file's outputs. */
export function outDir(): string {
  return mkdtempSync(join(tmpdir(), "xsplice-build-test-"));
}

/** One line of `nm -S -l`: address, size, type letter, name and (with debug info) source file. */
export interface NmSymbol {
  addr: bigint;
  size: bigint;
  type: string;
  name: string;
  file?: string;
}

/** `nm -S -l --defined-only FILE`, parsed; symbols without a size are left out. */
export function nm(file: string): NmSymbol[] {
  const out: NmSymbol[] = [];
  for (const line of tool("nm", ["-S", "-l", "--defined-only", file]).split("\n")) {
    const m = /^([0-9a-f]+) ([0-9a-f]+) (\w) (\S+)(?:\t(\S+?):\d+)?$/.exec(line);
    if (!m) continue;
    const sym: NmSymbol = { addr: BigInt(`0x${m[1]}`), size: BigInt(`0x${m[2]}`), type: m[3]!, name: m[4]! };
    if (m[5] !== undefined) sym.file = m[5];
    out.push(sym);
  }
  return out;
}

/** The one `nm` symbol called `name` (from source file `file`, when given); throws when not exactly one. */
export function nmOne(syms: NmSymbol[], name: string, file?: string): NmSymbol {
  const hits = syms.filter((s) => s.name === name && (file === undefined || s.file?.endsWith(`/${file}`)));
  if (hits.length !== 1) throw new Error(`nm: ${hits.length} symbols ${name}${file ? ` in ${file}` : ""}`);
  return hits[0]!;
}

/** Every build-id `readelf -n` prints for FILE, by the section that holds it. */
export function readelfBuildIds(file: string): Map<string, string> {
  const ids = new Map<string, string>();
  let section = "";
  for (const line of tool("readelf", ["-n", "-W", file]).split("\n")) {
    const s = /^Displaying notes found in: (\S+)/.exec(line);
    if (s) section = s[1]!;
    const b = /Build ID: ([0-9a-f]+)/.exec(line);
    if (b) ids.set(section, b[1]!);
  }
  return ids;
}
