/**
 * The library-target fixtures of the agent tests (`dlopen.test.ts`,
 * `libfile.test.ts`): `libanswer.so`, a program that links it at start-up,
 * one that `dlopen`s it later, and what the tests look at in their processes.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { compileC } from "../helpers/cc.ts";

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

/** Every thread of `pid`: its TracerPid and state letter. */
export function threads(pid: number): { tid: number; tracer: number; state: string }[] {
  return readdirSync(`/proc/${pid}/task`).map((t) => {
    const s = readFileSync(`/proc/${pid}/task/${t}/status`, "utf8");
    return {
      tid: Number(t),
      tracer: Number(/^TracerPid:\s+(\d+)/m.exec(s)?.[1]),
      state: /^State:\s+(\S)/m.exec(s)?.[1] ?? "?",
    };
  });
}

/** True when process `pid` maps the file `lib`. */
export function mapsFile(pid: number, lib: string): boolean {
  const ino = statSync(lib).ino;
  return readFileSync(`/proc/${pid}/maps`, "utf8")
    .split("\n")
    .some((l) => l.split(/\s+/)[4] === String(ino));
}
