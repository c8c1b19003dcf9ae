/**
 * Builds and starts the describe fixture (test/fixtures/describe): a PIE
 * linked against `libdescribe.so` (found through `$ORIGIN`), in three
 * variants: -O2, -O2 -fno-omit-frame-pointer, and a stripped copy of the -O2
 * one with a stripped library next to it.
 */
import { copyFileSync, existsSync, mkdirSync, renameSync } from "node:fs";
import { basename, join } from "node:path";
import { BUILD_DIR, compileC, tool } from "../helpers/cc.ts";
import { startTarget } from "../helpers/target.ts";

/** A built variant: the executable and the library beside it. */
export interface DescribeBuild {
  exe: string;
  lib: string;
  dir: string;
}

const SOURCES = ["describe/describe-main.c", "describe/describe-other.c"];

/** Build (cached) one variant of the fixture. */
export function buildDescribe(variant: "O2" | "fp" | "stripped"): DescribeBuild {
  const so = compileC({
    sources: ["describe/describe-lib.c"],
    kind: "shared",
    flags: ["-O2", "-g", "-Wl,-soname,libdescribe.so"],
    name: "libdescribe",
  });
  const flags = variant === "fp" ? ["-O2", "-g", "-fno-omit-frame-pointer"] : ["-O2", "-g"];
  const built = compileC({
    sources: SOURCES,
    kind: "exe",
    flags,
    libs: [so, "-Wl,-rpath,$ORIGIN"],
    name: `describe-${variant === "fp" ? "fp" : "O2"}`,
  });
  // One directory per build, named by the (hashed) outputs, holding the exe and libdescribe.so.
  const dir = join(BUILD_DIR, `${basename(built)}.${variant}.d`);
  const exe = join(dir, "describe");
  const lib = join(dir, "libdescribe.so");
  if (!existsSync(exe)) {
    mkdirSync(dir, { recursive: true });
    if (variant === "stripped") {
      tool("strip", ["-o", lib, so]);
      tool("strip", ["-o", `${exe}.tmp`, built]);
    } else {
      copyFileSync(so, lib);
      copyFileSync(built, `${exe}.tmp`);
    }
    renameSync(`${exe}.tmp`, exe); // last, so a half-built directory is rebuilt
  }
  return { exe, lib, dir };
}

/** A running fixture and the addresses it printed of itself. */
export interface Running {
  pid: number;
  /** Thread id of the second thread, also parked in the chain. */
  worker: number;
  printed: Map<string, bigint>;
  /** Thread-pointer offsets the program printed of its thread-locals. */
  tpoffs: Map<string, bigint>;
  kill(): Promise<void>;
}

/**
 * Start an executable of the fixture (as a grandchild, so ptrace tests can
 * seize it: see test/helpers/target.ts) and wait for `ready pid=N worker=T`.
 */
export async function startDescribe(exe: string): Promise<Running> {
  const target = await startTarget(exe);
  const printed = new Map<string, bigint>();
  const tpoffs = new Map<string, bigint>();
  for (const line of target.lines) {
    const m = /^(\w+)=(0x[0-9a-f]+)$/.exec(line);
    if (m) printed.set(m[1]!, BigInt(m[2]!));
    const t = /^tpoff (\w+)=(-?\d+)$/.exec(line);
    if (t) tpoffs.set(t[1]!, BigInt(t[2]!));
  }
  const worker = Number(/worker=(\d+)/.exec(target.readyLine)?.[1]);
  return { pid: target.pid, worker, printed, tpoffs, kill: () => target.kill() };
}
