/**
 * The compiler wrapper `xsplice make` puts in front of the user's build
 * (SPEC §13): a small POSIX shell script, installed as `CC` and `CXX`, that
 * adds `-ffunction-sections -fdata-sections` to every compile and records
 * the working directory and command line of each one in a log, so that the
 * objects of the two builds can be found and paired afterwards without
 * knowing anything of the build system.
 */
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Flags every compile of both builds gets; a target meant for patching is built with them too. */
export const MAKE_CFLAGS: readonly string[] = ["-ffunction-sections", "-fdata-sections"];

/** Field separator of the log: a byte no path or flag of a sane build contains. */
export const LOG_SEP = "\x1f";

/**
 * One log line per compile: `cwd SEP arg SEP arg ...`. `printf` of one short
 * line to a file opened with `>>` is one `write(2)` with O_APPEND, so lines
 * of parallel compiles do not interleave.
 */
function script(realVar: string, fallback: string): string {
  return `#!/bin/sh
# xsplice make compiler wrapper (generated)
real="\${${realVar}:-${fallback}}"
compile=0
for a in "$@"; do
  case "$a" in -c) compile=1 ;; esac
done
if [ "$compile" = 0 ]; then exec $real "$@"; fi
$real "$@" ${MAKE_CFLAGS.join(" ")} || exit $?
line="$PWD"
for a in "$@"; do line="$line$(printf '\\037')$a"; done
printf '%s\\n' "$line" >> "$XSPLICE_CC_LOG"
`;
}

/** Paths of the installed wrappers. */
export interface Wrappers {
  cc: string;
  cxx: string;
}

/** Write the `cc` and `c++` wrappers into `dir`. */
export function installWrappers(dir: string): Wrappers {
  const cc = join(dir, "xsplice-cc");
  const cxx = join(dir, "xsplice-c++");
  writeFileSync(cc, script("XSPLICE_REAL_CC", "cc"));
  writeFileSync(cxx, script("XSPLICE_REAL_CXX", "c++"));
  chmodSync(cc, 0o755);
  chmodSync(cxx, 0o755);
  return { cc, cxx };
}

/** One compile the wrapper recorded. */
export interface Compile {
  cwd: string;
  args: string[];
  /** The object it wrote, absolute. */
  object: string;
}

/** The object a compile wrote: `-o FILE`, else the source's base name with `.o` in the cwd (as cc does). */
function objectOf(cwd: string, args: readonly string[]): string | undefined {
  const o = args.indexOf("-o");
  if (o >= 0 && args[o + 1] !== undefined) {
    const out = args[o + 1]!;
    return out.startsWith("/") ? out : join(cwd, out);
  }
  const src = args.find((a) => /\.(c|cc|cpp|cxx|C|s|S)$/.test(a) && !a.startsWith("-"));
  if (src === undefined) return undefined;
  const base = src.slice(src.lastIndexOf("/") + 1).replace(/\.[^.]+$/, ".o");
  return join(cwd, base);
}

/** Parse the wrapper's log. */
export function parseLog(text: string): Compile[] {
  const out: Compile[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const [cwd, ...args] = line.split(LOG_SEP);
    const object = objectOf(cwd!, args);
    if (object !== undefined) out.push({ cwd: cwd!, args, object });
  }
  return out;
}
