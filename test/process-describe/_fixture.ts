/**
 * Builds and starts the describe fixture (test/fixtures/describe): a PIE
 * linked against `libdescribe.so` (found through `$ORIGIN`), in three
 * variants: -O2, -O2 -fno-omit-frame-pointer, and a stripped copy of the -O2
 * one with a stripped library next to it.
 */
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, renameSync } from "node:fs";
import { basename, join } from "node:path";
import { BUILD_DIR, compileC, tool } from "../helpers/cc.ts";

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
  printed: Map<string, bigint>;
  kill(): Promise<void>;
}

/** Start an executable of the fixture and wait for its `ready pid=N` line. */
export async function startDescribe(exe: string): Promise<Running> {
  const child = spawn(exe, [], { stdio: ["ignore", "pipe", "inherit"] });
  const printed = new Map<string, bigint>();
  let text = "";
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${exe} did not get ready`)), 10000);
    child.stdout!.setEncoding("utf8");
    child.stdout!.on("data", (chunk: string) => {
      text += chunk;
      if (/^ready pid=\d+$/m.test(text)) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.on("exit", (code) => reject(new Error(`${exe} exited with ${code}`)));
  });
  for (const m of text.matchAll(/^(\w+)=(0x[0-9a-f]+)$/gm)) printed.set(m[1]!, BigInt(m[2]!));
  return {
    pid: child.pid!,
    printed,
    kill: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGKILL");
      await gone;
    },
  };
}
