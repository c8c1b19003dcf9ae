/**
 * Hand-made payload records for executor tests that need no loader: the
 * target executable holds both the old function and its replacement, so a
 * record can redirect one to the other (`old_fn` → `new_fn`). Also the
 * fixture target, built as SPEC §12 asks (with and without CET).
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { archFor } from "../../../src/arch/index.ts";
import { buildPayload } from "../../../src/build/index.ts";
import { commitUploaded } from "../../../src/core/actions.ts";
import type { FuncRecord, PayloadRecord } from "../../../src/core/registry/records.ts";
import type { TargetSession } from "../../../src/core/session.ts";
import { readElf } from "../../../src/elf/file.ts";
import { hexBytes as toHex } from "../../../src/hex.ts";
import { readMemory } from "../../../src/process/memory.ts";
import { BUILD_DIR, builderFingerprint, compileC, FIXTURES, INCLUDE, tool } from "../../helpers/cc.ts";
import { payloadRecord } from "../../helpers/records.ts";
import { symbolAddress } from "../../helpers/target.ts";

/** Flags of a target meant for live patching (SPEC §12), PIE. */
export const FLAGS = [
  "-O2",
  "-g",
  "-flive-patching=inline-clone",
  "-fno-omit-frame-pointer",
  "-fPIE",
  "-pie",
];

/**
 * The action fixture target; `cet` adds `-fcf-protection` (endbr64 at every
 * function); `livePatching: false` leaves out `-flive-patching=inline-clone`.
 */
export function actionsTarget(cet = true, livePatching = true): string {
  const flags = [...FLAGS, cet ? "-fcf-protection=full" : "-fcf-protection=none", "-Wl,--build-id"];
  return compileC({
    sources: ["actions/actions-target.c"],
    kind: "exe",
    flags: livePatching ? flags : flags.filter((f) => !f.startsWith("-flive-patching")),
    libs: ["-lpthread"],
    name: `actions-target${cet ? "-cet" : ""}${livePatching ? "" : "-nolp"}`,
  });
}

/** Build (cached) a payload from test/fixtures/actions/`source` against `target`. */
export function actionPayload(
  source: string,
  target: string,
  opts: { depends?: string; cflags?: string[] } = {},
): string {
  const src = join(FIXTURES, "actions", source);
  const h = createHash("sha256");
  h.update(JSON.stringify([target, opts]));
  h.update(readFileSync(target));
  h.update(readFileSync(src));
  h.update(readFileSync(join(INCLUDE, "xsplice.h")));
  h.update(builderFingerprint());
  if (opts.depends) h.update(readFileSync(opts.depends));
  const out = join(BUILD_DIR, "actions", `${basename(source, ".c")}-${h.digest("hex").slice(0, 12)}.xsplice`);
  if (existsSync(out)) return out;
  mkdirSync(dirname(out), { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  buildPayload({ sources: [src], target, out: tmp, ...opts });
  renameSync(tmp, out);
  return out;
}

/** Symbol size from nm. */
export function symbolSize(exe: string, name: string): number {
  const line = tool("nm", ["-S", exe])
    .split("\n")
    .find((l) => l.endsWith(` ${name}`));
  if (!line) throw new Error(`${name} not in ${exe}`);
  return Number.parseInt(line.split(" ")[1]!, 16);
}

/** A function entry redirecting `oldName` to `newName` (or NOPing `nop` bytes when newName is undefined). */
export function handFunc(pid: number, exe: string, oldName: string, newName?: string, nop = 0): FuncRecord {
  const arch = archFor(62);
  const oldAddr = symbolAddress(pid, exe, oldName);
  const oldSize = symbolSize(exe, oldName);
  const head = readMemory(pid, oldAddr, 16);
  const patchAddr = oldAddr + BigInt(arch.patchOffset(head));
  const newAddr = newName ? symbolAddress(pid, exe, newName) : 0n;
  const patch = newName ? arch.trampoline(patchAddr, newAddr) : arch.nops(nop);
  return {
    name: oldName,
    oldAddr: `0x${oldAddr.toString(16)}`,
    oldSize,
    newAddr: `0x${newAddr.toString(16)}`,
    newSize: newName ? symbolSize(exe, newName) : nop,
    patchAddr: `0x${patchAddr.toString(16)}`,
    patch: toHex(patch),
    undo: "",
  };
}

/** The build-id of an ELF file, hex. */
export function buildIdOf(file: string): string {
  return toHex(readElf(readFileSync(file)).buildId()!);
}

/** A CHECKED record for the target `exe` with `funcs`; depends on the object unless told. */
export function handRecord(
  exe: string,
  name: string,
  funcs: FuncRecord[],
  over: Partial<PayloadRecord> = {},
): PayloadRecord {
  const obj = buildIdOf(exe);
  return payloadRecord(name, {
    buildId: toHex(randomBytes(20)),
    target: obj,
    depends: obj,
    object: { path: exe, buildId: obj, bias: "0x0" },
    funcs,
    ...over,
  });
}

/** Upload a hand-made record (registry only: its code is already in the target). */
export function addRecord(session: TargetSession, record: PayloadRecord): void {
  session.commit(commitUploaded(session.state, record));
}
