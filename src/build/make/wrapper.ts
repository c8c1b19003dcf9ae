/**
 * The compiler wrapper `xsplice make` puts in front of the user's build
 * (SPEC §13): a small POSIX shell script, installed as `CC` and `CXX`, that
 * adds `-ffunction-sections -fdata-sections` to every compile, copies the
 * object it wrote into a store of its own at once, and records the working
 * directory, the stored copy and the command line of each compile in a log.
 * The copy is what makes the pairing independent of the build system: a
 * build may compile one source several times into one path (zlib's
 * `objs/X.o`, moved to `X.lo` before the next compile), move or rename
 * objects, or delete them; the store keeps each compile's own result.
 */
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** Flags every compile of both builds gets; a target meant for patching is built with them too. */
export const MAKE_CFLAGS: readonly string[] = ["-ffunction-sections", "-fdata-sections"];

/** Field separator of the log: a byte no path or flag of a sane build contains. */
export const LOG_SEP = "\x1f";

/**
 * One log line per compile: `cwd SEP stored SEP arg SEP arg ...`, where
 * `stored` is the copy in `$XSPLICE_OBJ_STORE` (empty when the object is not
 * known: several sources and no `-o`, or no store). `printf` of one short
 * line to a file opened with `>>` is one `write(2)` with O_APPEND, so lines
 * of parallel compiles do not interleave; `mktemp` gives each parallel
 * compile its own name in the store.
 */
function script(realVar: string, fallback: string): string {
  return `#!/bin/sh
# xsplice make compiler wrapper (generated)
real="\${${realVar}:-${fallback}}"
compile=0
out=
prev=
nsrc=0
src=
for a in "$@"; do
  case "$prev" in -o) out="$a" ;; esac
  case "$a" in
    -c) compile=1 ;;
    -o) ;;
    -o*) out="\${a#-o}" ;;
    -*) ;;
    *.c|*.cc|*.cpp|*.cxx|*.C|*.s|*.S) if [ "$prev" != -o ]; then nsrc=$((nsrc + 1)); src="$a"; fi ;;
  esac
  prev="$a"
done
if [ "$compile" = 0 ]; then exec $real "$@"; fi
$real "$@" ${MAKE_CFLAGS.join(" ")} || exit $?
if [ -z "$out" ] && [ "$nsrc" = 1 ]; then out="\${src##*/}"; out="\${out%.*}.o"; fi
stored=
if [ -n "$out" ] && [ -n "$XSPLICE_OBJ_STORE" ] && [ -f "$out" ]; then
  stored=$(mktemp "$XSPLICE_OBJ_STORE/o.XXXXXXXX") && cp "$out" "$stored" || stored=
fi
line="$PWD$(printf '\\037')$stored"
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
  /** The object it wrote, absolute (where the build put it; it may have moved since). */
  object: string;
  /** The wrapper's copy of the object, taken right after the compile; absent when it made none. */
  stored?: string;
  /** The source it compiled (as given on the command line), when it names one. */
  source?: string;
}

/** The object a compile wrote: `-o FILE`, else the source's base name with `.o` in the cwd (as cc does). */
function objectOf(cwd: string, args: readonly string[]): string | undefined {
  const o = args.indexOf("-o");
  if (o >= 0 && args[o + 1] !== undefined) {
    const out = args[o + 1]!;
    return out.startsWith("/") ? out : join(cwd, out);
  }
  const src = sourceOf(args);
  if (src === undefined) return undefined;
  const base = src.slice(src.lastIndexOf("/") + 1).replace(/\.[^.]+$/, ".o");
  return join(cwd, base);
}

/** The source file a compile names (the first argument that looks like one and is not `-o`'s). */
function sourceOf(args: readonly string[]): string | undefined {
  return args.find((a, i) => /\.(c|cc|cpp|cxx|C|s|S)$/.test(a) && !a.startsWith("-") && args[i - 1] !== "-o");
}

/** Parse the wrapper's log. */
export function parseLog(text: string): Compile[] {
  const out: Compile[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const [cwd, stored, ...args] = line.split(LOG_SEP);
    const object = objectOf(cwd!, args);
    if (object === undefined) continue;
    const c: Compile = { cwd: cwd!, args, object };
    if (stored) c.stored = stored;
    const source = sourceOf(args);
    if (source !== undefined) c.source = source;
    out.push(c);
  }
  return out;
}
