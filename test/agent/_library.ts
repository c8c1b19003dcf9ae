/**
 * The library-target fixtures of the agent tests (`dlopen.test.ts`,
 * `libfile.test.ts`): `libanswer.so`, a program that links it at start-up,
 * one that `dlopen`s it later, and what the tests look at in their processes.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, renameSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { compileC } from "../helpers/cc.ts";
import type { Target } from "../helpers/target.ts";
import { type SpawnedAgent, spawnAgent, until } from "./_agent.ts";
import { agentPayload } from "./_fixture.ts";

/** lib_answer(1) unpatched, and with lib-fix.c applied. */
export const OLD = 7;
export const FIXED = 1007;

/** SPEC §12 flags of a live-patchable object. */
const FLAGS = [
  "-O2",
  "-g",
  "-flive-patching=inline-clone",
  "-fno-omit-frame-pointer",
  "-fcf-protection=full",
  "-Wl,--build-id",
];

/** The library and its two users, compiled (cached under test/.build). */
export function libraryFixtures(): { lib: string; user: string; opener: string } {
  const lib = compileC({ sources: ["agent/libanswer.c"], kind: "shared", flags: FLAGS, name: "libanswer" });
  const user = compileC({
    sources: ["agent/lib-user.c"],
    kind: "exe",
    flags: [...FLAGS, "-fPIE", "-pie"],
    libs: [lib],
    name: "lib-user",
  });
  const opener = compileC({
    sources: ["agent/lib-dlopen.c"],
    kind: "exe",
    flags: [...FLAGS, "-fPIE", "-pie"],
    libs: ["-ldl", "-lpthread"],
    name: "lib-dlopen",
  });
  return { lib, user, opener };
}

/**
 * `agent-target.c` linked with `libforker.so`, whose constructor forks before
 * the program's entry point (the child runs `main` too, unless FORKER_EXEC).
 */
export function forkerFixture(): string {
  const flags = ["-O2", "-g", "-flive-patching=inline-clone", "-Wl,--build-id"];
  const lib = compileC({ sources: ["agent/libforker.c"], kind: "shared", flags, name: "libforker" });
  return compileC({
    sources: ["agent/agent-target.c"],
    kind: "exe",
    flags: [...flags, "-fPIE", "-pie", "-Wl,--no-as-needed"],
    libs: [lib, `-Wl,-rpath,${dirname(lib)}`],
    name: "agent-target-forker",
  });
}

/** Every thread of `pid`: its TracerPid and state letter (a thread that ends meanwhile is left out). */
export function threads(pid: number): { tid: number; tracer: number; state: string }[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((t) => {
    let s: string;
    try {
      s = readFileSync(`/proc/${pid}/task/${t}/status`, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    return [
      {
        tid: Number(t),
        tracer: Number(/^TracerPid:\s+(\d+)/m.exec(s)?.[1]),
        state: /^State:\s+(\S)/m.exec(s)?.[1] ?? "?",
      },
    ];
  });
}

/** True when process `pid` maps the file `lib`. */
export function mapsFile(pid: number, lib: string): boolean {
  const ino = statSync(lib).ino;
  return readFileSync(`/proc/${pid}/maps`, "utf8")
    .split("\n")
    .some((l) => l.split(/\s+/)[4] === String(ino));
}

/**
 * An agent (in its own process group, so that the end can wait for its gate
 * and workers) with directories under `dir`; `installFix()` drops the
 * payload of lib-fix.c for `lib` into its directory atomically.
 */
export async function libraryAgent(
  dir: string,
  lib: string,
): Promise<{ agent: SpawnedAgent; installFix: () => void }> {
  const payloads = join(dir, "payloads");
  const state = join(dir, "state");
  mkdirSync(payloads);
  mkdirSync(state);
  const agent = spawnAgent(payloads, state, [], { ownGroup: true });
  await agent.ready;
  const fix = agentPayload("lib-fix.c", lib);
  return {
    agent,
    installFix: () => {
      copyFileSync(fix, join(payloads, ".lib-fix.tmp"));
      renameSync(join(payloads, ".lib-fix.tmp"), join(payloads, "lib-fix.xsplice"));
    },
  };
}

/** Stop `agent`, wait until its gate and workers are gone too, then kill `targets` and remove `tmp`. */
export async function endLibraryTest(
  agent: SpawnedAgent | undefined,
  targets: readonly Target[],
  tmp: { remove(): void },
): Promise<void> {
  try {
    await agent?.stop().catch(() => undefined);
    // A gate whose fanotify reads no event ends must still exit (gate.ts exitWithoutJoin).
    if (agent)
      await until(
        "the agent's gate and workers gone",
        () => agent.groupLeft().length === 0,
        undefined,
        20_000,
      );
  } finally {
    await Promise.all(targets.map((t) => t.kill()));
    tmp.remove();
  }
}
