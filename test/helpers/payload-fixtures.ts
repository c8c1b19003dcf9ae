/**
 * Builds xsplice payloads from C fixtures the way Xen's test payloads are made,
 * without `xsplice build` or `xsplice.h`: compile (`gcc -c -O2 -fPIC
 * -ffunction-sections`), link (`ld -r --build-id`), then add the dependency
 * notes with `objcopy --add-section` (SPEC §1). Outputs are cached under
 * `test/.build/`, keyed by the source, the options and the tools' versions.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { BUILD_DIR, compileC, FIXTURES, tool } from "./cc.ts";

/** The note type of a GNU build-id (NT_GNU_BUILD_ID). */
const NT_GNU_BUILD_ID = 3;

/**
 * A stand-in target build-id (20 bytes, like `ld --build-id=sha1`), used when a
 * test does not care which object the payload names.
 */
export const FIXTURE_TARGET_ID: Uint8Array = new Uint8Array(
  createHash("sha1").update("xsplice fixture target").digest(),
);

/** What to build. */
export interface FixturePayloadOptions {
  /** C source, absolute or relative to `test/fixtures/`. */
  source: string;
  /**
   * Names of the note sections: `.xsplice.target`/`.xsplice.depends` or Xen's
   * `.livepatch.xen_depends`/`.livepatch.depends`. Defaults to `xsplice`.
   */
  format?: "xsplice" | "livepatch";
  /** Build-id written to the target note; `null` leaves the section out. Default `FIXTURE_TARGET_ID`. */
  target?: Uint8Array | null;
  /** Build-id written to the depends note; `null` leaves it out. Defaults to the target's. */
  depends?: Uint8Array | null;
  /** Link with `--build-id` (default true); false leaves `.note.gnu.build-id` out. */
  buildId?: boolean;
  /** Extra gcc flags after the fixed ones (e.g. `-fcommon`). */
  cflags?: string[];
  /** Base name of the output file; defaults to the source's base name. */
  name?: string;
}

/** The bytes of one GNU build-id note: namesz=4, descsz, type 3, "GNU\0", desc padded to 4. */
export function buildIdNote(id: Uint8Array): Uint8Array {
  const pad = (id.length + 3) & ~3;
  const out = new Uint8Array(16 + pad);
  const view = new DataView(out.buffer);
  view.setUint32(0, 4, true);
  view.setUint32(4, id.length, true);
  view.setUint32(8, NT_GNU_BUILD_ID, true);
  out.set([0x47, 0x4e, 0x55, 0], 12);
  out.set(id, 16);
  return out;
}

let toolVersions: string | undefined;
function versions(): string {
  toolVersions ??= [
    tool("gcc", ["-dumpfullversion"]),
    tool("ld", ["--version"]).split("\n")[0],
    tool("objcopy", ["--version"]).split("\n")[0],
  ].join("|");
  return toolVersions;
}

function hex(b: Uint8Array | null | undefined): string {
  return b === undefined ? "default" : b === null ? "none" : Buffer.from(b).toString("hex");
}

/** Build a payload from a C fixture; returns the path of the cached object. */
export function buildFixturePayload(opts: FixturePayloadOptions): string {
  const format = opts.format ?? "xsplice";
  const target = opts.target === undefined ? FIXTURE_TARGET_ID : opts.target;
  const depends = opts.depends === undefined ? target : opts.depends;
  const withBuildId = opts.buildId ?? true;
  const source = opts.source.startsWith("/") ? opts.source : join(FIXTURES, opts.source);
  const name = opts.name ?? basename(source, ".c");
  const obj = compileC({
    sources: [source],
    kind: "obj",
    flags: ["-O2", "-fPIC", "-ffunction-sections", ...(opts.cflags ?? [])],
    name: `${name}-cc`,
  });
  const key = createHash("sha256")
    .update(JSON.stringify([format, hex(target), hex(depends), withBuildId, versions()]))
    .update(readFileSync(obj))
    .digest("hex")
    .slice(0, 12);
  const out = join(BUILD_DIR, `${name}-payload-${key}.o`);
  if (existsSync(out)) return out;
  mkdirSync(BUILD_DIR, { recursive: true });
  const tmp = `${out}.tmp${process.pid}`;
  try {
    tool("ld", ["-r", ...(withBuildId ? ["--build-id"] : []), "-o", tmp, obj]);
    const [targetName, dependsName] =
      format === "xsplice"
        ? [".xsplice.target", ".xsplice.depends"]
        : [".livepatch.xen_depends", ".livepatch.depends"];
    const args: string[] = [];
    const notes: string[] = [];
    for (const [section, id] of [
      [targetName, target],
      [dependsName, depends],
    ] as const) {
      if (id === null) continue;
      const file = `${tmp}${section}`;
      writeFileSync(file, buildIdNote(id));
      notes.push(file);
      args.push("--add-section", `${section}=${file}`, "--set-section-flags", `${section}=alloc,readonly`);
    }
    if (args.length > 0) tool("objcopy", [...args, tmp]);
    for (const f of notes) rmSync(f, { force: true });
    renameSync(tmp, out); // atomic, so a concurrent run never sees half a file
  } finally {
    rmSync(tmp, { force: true });
  }
  return out;
}

/** Build (or reuse) a fixture payload and return its bytes. */
export function fixturePayloadBytes(opts: FixturePayloadOptions): Uint8Array {
  return new Uint8Array(readFileSync(buildFixturePayload(opts)));
}

/** The GNU build-id of an ELF file, as `readelf -n` reports it; undefined when it has none. */
export function readelfBuildId(path: string): Uint8Array | undefined {
  const m = /Build ID: ([0-9a-f]+)/.exec(tool("readelf", ["-n", path]));
  return m?.[1] === undefined ? undefined : new Uint8Array(Buffer.from(m[1], "hex"));
}
