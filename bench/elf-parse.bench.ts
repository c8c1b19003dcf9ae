/**
 * ELF reader throughput: open a large relocatable object and parse every
 * symbol and every relocation, against `readelf -srW` (output discarded) on
 * the same file in the same run. The object is the SQLite amalgamation built
 * with `gcc -c -O2 -ffunction-sections -fdata-sections` (many sections and
 * relocations, like a payload built from a big target). `sqlite3.c` comes from
 * the better-sqlite3 npm tarball, fetched with `npm pack` into a temp dir (not
 * installed) and cached under bench/.build/. Without network or npm, the bench
 * generates a large C file itself and says so in the row note
 * (`ELF_BENCH_GENERATED=1` forces that path).
 */
import { execFileSync, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { readElf } from "../src/elf/index.ts";
import { type Bench, sample, stats } from "./lib.ts";

const BUILD = join(dirname(fileURLToPath(import.meta.url)), ".build");
const CFLAGS = ["-c", "-O2", "-ffunction-sections", "-fdata-sections"];

/** Fetch sqlite3.c from the npm tarball; undefined when npm or the network is unavailable. */
export function fetchSqlite(): string | undefined {
  const dest = join(BUILD, "sqlite3.c");
  if (existsSync(dest)) return dest;
  const tmp = mkdtempSync(join(tmpdir(), "xsplice-sqlite-"));
  try {
    execFileSync("npm", ["pack", "better-sqlite3@12", "--silent"], {
      cwd: tmp,
      stdio: "pipe",
      timeout: 120_000,
    });
    const tgz = readdirSync(tmp).find((f) => f.endsWith(".tgz"));
    if (!tgz) return undefined;
    execFileSync("tar", ["xzf", tgz, "package/deps/sqlite3/sqlite3.c"], { cwd: tmp, stdio: "pipe" });
    copyFileSync(join(tmp, "package/deps/sqlite3/sqlite3.c"), dest);
    return dest;
  } catch {
    return undefined;
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** A generated stand-in: many functions, statics, globals and calls, so many relocations. */
function generatedSource(): string {
  const dest = join(BUILD, "generated-large.c");
  if (existsSync(dest)) return dest;
  const parts = ["#include <string.h>\n#include <stdio.h>\n"];
  const n = 6000;
  for (let i = 0; i < n; i++) {
    parts.push(
      `static int s${i} = ${i};\nint g${i}[4] = {${i}, ${i + 1}};\nconst char *str${i} = "string ${i}";\n`,
    );
    parts.push(
      `${i % 3 ? "static " : ""}int f${i}(int x) { char b[32]; snprintf(b, sizeof b, "%d", x + s${i}); ` +
        `return (int)strlen(b) + g${i}[x & 3]${i > 0 ? ` + f${i - 1}(x - 1)` : ""}; }\n`,
    );
  }
  parts.push(`int entry(int x) { return f${n - 1}(x); }\n`);
  writeFileSync(dest, parts.join(""));
  return dest;
}

function largeObject(): { path: string; note: string } {
  mkdirSync(BUILD, { recursive: true });
  // ELF_BENCH_GENERATED=1 forces the fallback, to check it still builds.
  const sqlite = process.env["ELF_BENCH_GENERATED"] ? undefined : fetchSqlite();
  const source = sqlite ?? generatedSource();
  const out = join(BUILD, sqlite ? "sqlite3.o" : "generated-large.o");
  if (!existsSync(out)) {
    execFileSync("gcc", [...CFLAGS, "-o", `${out}.tmp`, source], { stdio: "pipe" });
    execFileSync("mv", [`${out}.tmp`, out]);
  }
  const what = sqlite ? "sqlite3.o" : "GENERATED C (npm/network unavailable, no sqlite3.c)";
  return { path: out, note: what };
}

const bench: Bench = async () => {
  const { path, note } = largeObject();
  const size = readFileSync(path).length;
  let counts = { sections: 0, symbols: 0, relocations: 0 };
  const ours = await sample(
    () => {
      const f = readElf(readFileSync(path));
      const symbols = f.symbols();
      let relocations = 0;
      for (const r of f.relocationSections()) relocations += r.relocations.length;
      counts = { sections: f.sections.length, symbols: symbols.length, relocations };
    },
    15,
    2,
  );
  const baseline = await sample(
    () => {
      const r = spawnSync("readelf", ["-srW", path], { stdio: ["ignore", "ignore", "ignore"] });
      if (r.status !== 0) throw new Error(`readelf failed on ${path}`);
    },
    15,
    1,
  );
  return [
    {
      name: "readElf + symbols + relocations (large .o)",
      stats: stats(ours),
      baseline: { name: "readelf -srW", stats: stats(baseline) },
      note: `${note}, ${(size / 1e6).toFixed(1)} MB, ${counts.sections} sections, ${counts.symbols} symbols, ${counts.relocations} relocations`,
    },
  ];
};

export default bench;
