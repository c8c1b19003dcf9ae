/**
 * The vulnerable zlib of the CVE-2022-37434 example: fetch Debian's source of
 * zlib 1.2.13 (which carries the upstream fix), reverse-apply `fix.patch` to
 * get the vulnerable inflate.c of 1.2.12, and build it the way a library
 * meant for live patching is built (README.md, "Building targets for live
 * patching"), together with the workload that uses it.
 *
 * The download is cached under `test/.build/downloads/` and checked by
 * SHA-256; builds go under `examples/.build/`, keyed by everything they are
 * made from, and are made in a temporary directory renamed into place, so a
 * concurrent or interrupted run never sees half a tree.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { EXAMPLES_BUILD_DIR, EXAMPLES_DIR, LIVE_PATCHABLE_CFLAGS } from "../lib/build.ts";

const execFileAsync = promisify(execFile);

/** This example's directory. */
export const CVE_DIR: string = join(EXAMPLES_DIR, "zlib-cve");
/** The upstream fix (eff308af + 1eb7682f), the patch `xsplice make` turns into a payload. */
export const FIX_PATCH: string = join(CVE_DIR, "fix.patch");
/** Where downloads are cached (git-ignored, shared with the test suite). */
export const DOWNLOAD_DIR: string = join(EXAMPLES_DIR, "..", "test", ".build", "downloads");

/** Debian bookworm's zlib source package: the version, and the upstream tarball it ships. */
export const ZLIB_SOURCE = {
  package: "zlib",
  version: "1:1.2.13.dfsg-1",
  tarball: "zlib_1.2.13.dfsg.orig.tar.bz2",
  /** From the package's .dsc (Checksums-Sha256). */
  sha256: "71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1",
} as const;

/**
 * Compiler flags of the vulnerable library: those of any live-patchable
 * target, minus the executable-only ones (zlib's configure adds `-fPIC` for
 * the shared objects), plus `-ffunction-sections -fdata-sections`, which
 * `xsplice make` adds to its own rebuilds: with them the target's functions
 * are the very bytes the rebuilt original has, the check `make` makes
 * before it diffs (SPEC §13).
 */
export const ZLIB_CFLAGS: readonly string[] = [
  ...LIVE_PATCHABLE_CFLAGS.filter((f) => f !== "-fPIE" && f !== "-pie" && !f.startsWith("-Wl,")),
  "-ffunction-sections",
  "-fdata-sections",
];

/** The shared library's file name in a built tree (the soname is libz.so.1). */
export const ZLIB_SHARED = "libz.so.1.2.13";

/**
 * The build command of the zlib tree, as a shell line run in the tree: its
 * own configure (which honours `CC` and `CFLAGS` from the environment), then
 * make of the shared library (zlib's test programs are not part of the
 * target). `xsplice make` runs the same line.
 *
 * zlib's `libz.so` rule also builds `libz.a`, so each source is compiled
 * twice: `objs/X.o` with SFLAGS (`-fPIC` and more), moved to `X.lo` at once
 * (the shared library's objects), and `X.o` with CFLAGS (the archive's).
 * `xsplice make` keeps every compile's object and picks the one the library
 * was linked from, so the build needs nothing special.
 */
export const ZLIB_BUILD_COMMAND = `CFLAGS='${ZLIB_CFLAGS.join(" ")}' ./configure --shared >/dev/null && make ${ZLIB_SHARED}`;

/** One-line failure of the example's preparation (what failed and why). */
export class PrepareError extends Error {}

async function run(cmd: string, args: string[], cwd: string, env?: NodeJS.ProcessEnv): Promise<string> {
  try {
    const r = await execFileAsync(cmd, args, { cwd, env: env ?? process.env, maxBuffer: 16 << 20 });
    return r.stdout;
  } catch (err) {
    const e = err as { stderr?: string; stdout?: string; message: string };
    const lines = `${e.stderr ?? ""}\n${e.stdout ?? ""}`.trim().split("\n").filter(Boolean);
    const last = lines.filter((l) => /^E:|error/i.test(l)).pop() ?? lines.pop() ?? e.message;
    throw new PrepareError(`${cmd} ${args.join(" ")} failed: ${last.trim()}`);
  }
}

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/**
 * The deb-src twin of every `deb` source this machine's apt knows, as a
 * deb822 file: a fresh Debian machine usually lists binary sources only, and
 * `apt-get source` needs the source indices of the same archives.
 */
function debSrcList(): string {
  const stanzas: string[] = [];
  const dir = "/etc/apt/sources.list.d";
  const files = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith(".sources"))
        .sort()
        .map((f) => join(dir, f))
    : [];
  for (const f of files) {
    for (const stanza of readFileSync(f, "utf8").split(/\n\s*\n/)) {
      if (!/^Types:.*\bdeb\b/m.test(stanza)) continue;
      if (/^Enabled:\s*no/im.test(stanza)) continue;
      stanzas.push(
        stanza
          .split("\n")
          .filter((l) => !l.startsWith("#"))
          .map((l) => (l.startsWith("Types:") ? "Types: deb-src" : l))
          .join("\n"),
      );
    }
  }
  const legacy = "/etc/apt/sources.list";
  if (existsSync(legacy)) {
    for (const line of readFileSync(legacy, "utf8").split("\n")) {
      const m = /^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.+)$/.exec(line.trim());
      if (m) stanzas.push(`Types: deb-src\nURIs: ${m[2]}\nSuites: ${m[3]}\nComponents: ${m[4]}`);
    }
  }
  return `${stanzas.join("\n\n")}\n`;
}

/**
 * Fetch Debian's zlib source tarball into the download cache (once) and
 * return its path. First with the machine's own apt sources; when those have
 * no deb-src lines, with a private list made from its deb lines (in the
 * cache, so nothing outside the repository changes). Fails with one line
 * saying what could not be fetched.
 */
export async function fetchZlibSource(log: (line: string) => void = () => {}): Promise<string> {
  const cached = join(DOWNLOAD_DIR, ZLIB_SOURCE.tarball);
  if (existsSync(cached) && sha256(cached) === ZLIB_SOURCE.sha256) return cached;
  mkdirSync(DOWNLOAD_DIR, { recursive: true });
  const work = mkdtempSync(join(DOWNLOAD_DIR, "apt-"));
  const spec = `${ZLIB_SOURCE.package}=${ZLIB_SOURCE.version}`;
  try {
    log(`apt-get source --download-only ${spec}`);
    let firstError: string;
    try {
      await run("apt-get", ["source", "--download-only", "-q", spec], work);
      firstError = "";
    } catch (err) {
      firstError = (err as Error).message;
    }
    if (firstError !== "") {
      // The machine's lists have no source index: make a private one.
      log("no deb-src source for zlib: retrying with a private deb-src list of this machine's archives");
      const lists = join(work, "lists");
      const parts = join(work, "parts");
      mkdirSync(join(lists, "partial"), { recursive: true });
      mkdirSync(parts);
      writeFileSync(join(parts, "deb-src.sources"), debSrcList());
      const opts = [
        "-o",
        "Dir::Etc::SourceList=/dev/null",
        "-o",
        `Dir::Etc::SourceParts=${parts}`,
        "-o",
        `Dir::State::Lists=${lists}`,
        // No binary caches: the machine's own (built from its own lists) stay as they are.
        "-o",
        "Dir::Cache::pkgcache=",
        "-o",
        "Dir::Cache::srcpkgcache=",
        "-q",
      ];
      try {
        await run("apt-get", [...opts, "update"], work);
        await run("apt-get", [...opts, "source", "--download-only", spec], work);
      } catch (err) {
        throw new PrepareError(
          `cannot fetch the zlib ${ZLIB_SOURCE.version} source from Debian (${firstError}; then ${(err as Error).message})`,
        );
      }
    }
    const got = join(work, ZLIB_SOURCE.tarball);
    if (!existsSync(got))
      throw new PrepareError(`apt-get source ${spec} did not produce ${ZLIB_SOURCE.tarball}`);
    const sum = sha256(got);
    if (sum !== ZLIB_SOURCE.sha256)
      throw new PrepareError(`${ZLIB_SOURCE.tarball}: SHA-256 ${sum}, expected ${ZLIB_SOURCE.sha256}`);
    renameSync(got, cached);
    return cached;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** The built example: the trees and programs the run uses. */
export interface ZlibBuild {
  /** Vulnerable source tree, never built in: what `xsplice make --src` copies. */
  src: string;
  /** The same tree built with {@link ZLIB_BUILD_COMMAND}: the running target's home. */
  built: string;
  /** The target ELF, `built/libz.so.1.2.13`. */
  library: string;
  /** The workload, linked against {@link library} (rpath). */
  workload: string;
}

/**
 * Fetch (once), unpack, reverse-apply the fix, build the vulnerable library
 * and the workload (once per input: reused from `examples/.build/`).
 */
export async function buildVulnerableZlib(log: (line: string) => void = () => {}): Promise<ZlibBuild> {
  const tarball = await fetchZlibSource(log);
  const workloadSrc = join(CVE_DIR, "workload.c");
  const key = createHash("sha256")
    .update(ZLIB_SOURCE.sha256)
    .update(readFileSync(FIX_PATCH))
    .update(ZLIB_BUILD_COMMAND)
    .update(JSON.stringify(LIVE_PATCHABLE_CFLAGS))
    .update(readFileSync(workloadSrc))
    .digest("hex")
    .slice(0, 12);
  const home = join(EXAMPLES_BUILD_DIR, `zlib-cve-${key}`);
  const result: ZlibBuild = {
    src: join(home, "src"),
    built: join(home, "built"),
    library: join(home, "built", ZLIB_SHARED),
    workload: join(home, "workload"),
  };
  if (existsSync(result.workload)) return result;

  mkdirSync(EXAMPLES_BUILD_DIR, { recursive: true });
  const tmp = mkdtempSync(`${home}.tmp`);
  try {
    const src = join(tmp, "src");
    mkdirSync(src);
    await run("tar", ["-xjf", tarball, "-C", src, "--strip-components=1"], tmp);
    log(`patch -R -p1 < ${FIX_PATCH}     # zlib 1.2.13 → the vulnerable inflate() of 1.2.12`);
    await run("patch", ["-R", "-p1", "-s", "-i", FIX_PATCH], src);
    const built = join(tmp, "built");
    cpSync(src, built, { recursive: true });
    log(`${ZLIB_BUILD_COMMAND}`);
    await run("sh", ["-c", ZLIB_BUILD_COMMAND], built);
    // The workload is linked against the final location (rpath), so it is linked after the rename.
    renameSync(tmp, home);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    // A concurrent run may have renamed its complete tree into place first.
    if (!existsSync(join(home, "built", ZLIB_SHARED))) throw err;
  }
  const flags = [...LIVE_PATCHABLE_CFLAGS, "-pthread", "-Wall", "-Wextra"];
  const tmpExe = `${result.workload}.tmp${process.pid}`;
  log(`gcc ${flags.join(" ")} -o workload workload.c -lz (the vulnerable build, by rpath)`);
  await run(
    "gcc",
    [
      ...flags,
      `-I${result.built}`,
      "-o",
      tmpExe,
      workloadSrc,
      `-L${result.built}`,
      "-lz",
      `-Wl,-rpath,${result.built}`,
    ],
    home,
  );
  renameSync(tmpExe, result.workload);
  return result;
}
