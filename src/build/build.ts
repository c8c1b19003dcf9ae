/**
 * `buildPayload`: C sources written with `xsplice.h` → a payload file
 * (SPEC §1, §11). A straight pipeline: read the target, compile, link the
 * code, fill the funcs entries from the target's and the code's symbol
 * tables, add the notes and `.xsplice.symbols`, link again with a build-id,
 * check the result with the payload reader, write it atomically.
 *
 * Build-id (SPEC §1 "unique among loaded payloads"): the funcs entries are
 * patched in the intermediate object *before* the final `ld -r --build-id`,
 * so ld's sha1 covers the final content, filled sizes and addresses, notes
 * and metadata included. Two builds get the same id only when their bytes are
 * the same, which is the same payload; a payload stacked on another differs in
 * its `.xsplice.depends` note, so it never shares its predecessor's id.
 */
import {
  accessSync,
  constants as fsConstants,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  type Stats,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { archFor } from "../arch/index.ts";
import { ET, nameOf, PT, SHF, SHT, STT } from "../elf/defs.ts";
import { LIVE_PATCHING_METADATA, livePatchingWarning } from "../elf/dwarf-producer.ts";
import { sonameOf } from "../elf/dynamic.ts";
import { type ElfFile, type ElfSymbol, type Rela, readElf, type Section } from "../elf/index.ts";
import { XspliceError } from "../errors.ts";
import { hexBytes } from "../hex.ts";
import { XSPLICE_FUNC } from "../payload/abi.ts";
import { readPayload } from "../payload/index.ts";
import { ambiguousName } from "../payload/target-symbols.ts";
import type { TargetSymbol } from "../payload/types.ts";
import { generatedAssembly } from "./_generated.ts";
import { runTool } from "./_toolchain.ts";
import { TargetSymbols } from "./target-symbols.ts";

const HERE = dirname(fileURLToPath(import.meta.url));

/**
 * The `include/` directory shipped with the package: where `xsplice.h` lives (SPEC §11).
 * This module runs from `src/build/` (sources) or bundled into `dist/` (scripts/build.mjs).
 */
export const INCLUDE_DIR: string = resolve(HERE, basename(HERE) === "dist" ? ".." : "../..", "include");

/** The flags SPEC §11 fixes for every payload source; `cflags` come after them. */
export const BUILD_CFLAGS: readonly string[] = ["-O2", "-fPIC", "-ffunction-sections", "-fdata-sections"];

/** Inputs of {@link buildPayload}. */
export interface BuildOptions {
  /** C sources of the payload. */
  sources: string[];
  /** The target object (executable or shared library) as linked, with its symbol table. */
  target: string;
  /** Where to write the payload. */
  out: string;
  /** A previous payload to stack on (`.xsplice.depends` = its build-id, SPEC §4). */
  depends?: string;
  /** C compiler (default `cc`). */
  cc?: string;
  /** Extra compiler flags, after the fixed ones. */
  cflags?: string[];
  /** A name recorded in `.modinfo` as `name=...` (the default `xsplice load` name is the file's). */
  name?: string;
}

/** One filled `.xsplice.funcs` entry. */
export interface BuiltFunc {
  /** Old function's name as written in the entry. */
  name: string;
  /** Link-time address in the target (`st_value`). */
  oldAddr: bigint;
  /** `st_size` of the old function. */
  oldSize: number;
  /** Size of the replacement, or bytes to NOP. */
  newSize: number;
  /** True for an `XSPLICE_NOP` entry. */
  nop: boolean;
  /** The replacement's symbol name in the payload (absent for NOP entries). */
  replacement?: string;
}

/** What {@link buildPayload} made. */
export interface BuildResult {
  /** The payload file written. */
  path: string;
  /** The payload's own build-id, hex. */
  buildId: string;
  /** `.xsplice.target`: the target's build-id, hex. */
  target: string;
  /** `.xsplice.depends`, hex. */
  depends: string;
  funcs: BuiltFunc[];
  /** `.xsplice.symbols`: target symbols the code refers to, with their link-time addresses. */
  symbols: TargetSymbol[];
  /** Undefined symbols the target does not define: left to the loader (other payloads, libraries). */
  external: string[];
}

/** `struct xsplice_patch_func` (SPEC §1), whose fields are filled here. */
const ENTRY = XSPLICE_FUNC;

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** Read a file, mapping a missing or unreadable one to ENOENT/EACCES naming `what`. */
function readInput(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new XspliceError(code === "EACCES" ? "EACCES" : "ENOENT", `${what} ${path}: cannot read (${code})`);
  }
}

/**
 * A C source that cannot be read is named before the compiler runs: cc1 would report it
 * in its own words, under the compiler's exit status (EINVAL).
 */
function checkSource(path: string): void {
  let st: Stats;
  try {
    st = statSync(path);
    accessSync(path, fsConstants.R_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM")
      throw new XspliceError("EACCES", `source ${path}: permission denied`);
    throw new XspliceError("ENOENT", `source ${path}: no such file`);
  }
  if (!st.isFile()) throw new XspliceError("EINVAL", `source ${path} is not a regular file`);
}

/** Re-throw an error of a reader with `what` in front, keeping its errno. */
function prefixed(err: unknown, what: string): never {
  if (err instanceof XspliceError) throw new XspliceError(err.errno, `${what}: ${err.message}`, err.where);
  throw err;
}

/** The target object, as far as building needs it. */
export interface Target {
  path: string;
  elf: ElfFile;
  buildId: Uint8Array;
  symbols: TargetSymbols;
}

/** Read and check the target object (executable or shared library with a build-id). */
export function readTarget(path: string): Target {
  const bytes = readInput(path, "target");
  let elf: ElfFile;
  try {
    elf = readElf(bytes);
  } catch (err) {
    prefixed(err, `target ${path} is not a readable ELF object`);
  }
  const { type } = elf.header;
  if (type !== ET.EXEC && type !== ET.DYN) {
    throw new XspliceError(
      "EINVAL",
      `target ${path} is ET_${nameOf(ET, type)}, not an executable or shared object`,
    );
  }
  let buildId: Uint8Array | undefined;
  try {
    buildId = elf.buildId();
  } catch (err) {
    prefixed(err, `target ${path}`);
  }
  if (buildId === undefined || buildId.length === 0) {
    throw new XspliceError("EINVAL", `target ${path} has no GNU build-id note (link it with -Wl,--build-id)`);
  }
  // .symtab has the statics; a stripped target has only .dynsym, which the
  // loader would find at run time anyway (SPEC §2).
  const table = elf.symbols().length > 0 ? elf.symbols() : elf.dynamicSymbols();
  return { path, elf, buildId, symbols: new TargetSymbols(table) };
}

/**
 * For a shared-library target, where its file was found at build time and
 * its `DT_SONAME`: the agent's way to the library's inode before any process
 * maps it (docs/agent.md). Hints only: whatever file they lead to is used
 * only if its build-id is the target's. An executable (`PT_INTERP`, no
 * soname) records nothing.
 */
function libraryFacts(target: Target): string[] {
  const soname = sonameOf(target.elf);
  const interp = target.elf.programHeaders.some((ph) => ph.type === PT.INTERP);
  if (target.elf.header.type !== ET.DYN || (interp && soname === undefined)) return [];
  const facts = [`target-file=${resolve(target.path)}`];
  if (soname !== undefined) facts.push(`target-soname=${soname}`);
  return facts;
}

/** `.xsplice.depends` for a payload stacked on `path`: that payload's own build-id (SPEC §4). */
export function readDepends(path: string, target: Target): Uint8Array {
  const bytes = readInput(path, "--depends payload");
  let payload: ReturnType<typeof readPayload>;
  try {
    payload = readPayload(bytes);
  } catch (err) {
    prefixed(err, `--depends ${path}`);
  }
  if (!sameBytes(payload.target, target.buildId)) {
    throw new XspliceError(
      "EINVAL",
      `--depends ${path} was built for target ${hexBytes(payload.target)}, not ${target.path} (${hexBytes(target.buildId)})`,
    );
  }
  return payload.buildId;
}

/** The target's bytes at a link-time address, from the allocated section holding it. */
export function targetCode(elf: ElfFile, addr: bigint, size: number): Uint8Array {
  for (const s of elf.sections) {
    if (s.type !== SHT.PROGBITS || (s.flags & BigInt(SHF.ALLOC)) === 0n) continue;
    if (addr < s.addr || addr >= s.addr + BigInt(s.size)) continue;
    const from = Number(addr - s.addr);
    return s.data().subarray(from, Math.min(from + size, s.size));
  }
  return new Uint8Array(0);
}

/** One entry of the intermediate object's `.xsplice.funcs`, before filling. */
interface Entry {
  index: number;
  offset: number;
  name: string;
  newSize: bigint;
  /** The replacement function; undefined for a NOP entry. */
  replacement?: ElfSymbol;
}

function label(s: Section, index: number, name?: string): string {
  return `${s.name} entry ${index}${name ? ` (${name})` : ""}`;
}

/** The relocations applying to section `s`, by offset. */
function relocationsOf(elf: ElfFile, s: Section): Map<number, Rela> {
  const out = new Map<number, Rela>();
  for (const rs of elf.relocationSections()) {
    if (rs.target !== s.index) continue;
    for (const r of rs.relocations) out.set(Number(r.offset), r);
  }
  return out;
}

/** The C string a pointer field's relocation points at, inside the object. */
function pointedString(elf: ElfFile, sym: ElfSymbol | undefined, addend: bigint): string | undefined {
  if (sym === undefined || sym.section.kind !== "section") return undefined;
  const data = elf.section(sym.section.index).data();
  const from = Number(sym.value + addend);
  const end = data.indexOf(0, from);
  if (from < 0 || from >= data.length || end < 0) return undefined;
  return new TextDecoder().decode(data.subarray(from, end));
}

/**
 * The function a `new_addr` relocation points at: the symbol itself when it
 * is a function, else (gas turns references to statics into section + offset)
 * the function symbol at that offset of that section.
 */
function replacementOf(symbols: readonly ElfSymbol[], r: Rela): ElfSymbol | undefined {
  const sym = symbols[r.symbol];
  if (sym === undefined || sym.section.kind !== "section") return undefined;
  if (sym.type === STT.FUNC) return r.addend === 0n ? sym : undefined;
  const at = sym.value + r.addend;
  const index = sym.section.index;
  return symbols.find(
    (s) => s.type === STT.FUNC && s.section.kind === "section" && s.section.index === index && s.value === at,
  );
}

/** Read the entries the macros wrote (SPEC §11): names and replacements through their relocations. */
function readEntries(elf: ElfFile, s: Section): Entry[] {
  if (s.size % ENTRY.size !== 0) {
    throw new XspliceError(
      "EINVAL",
      `${s.name} size ${s.size} is not a multiple of ${ENTRY.size} (struct xsplice_patch_func)`,
      { section: s.name },
    );
  }
  const symbols = elf.symbols();
  const relocs = relocationsOf(elf, s);
  const data = s.data();
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const entries: Entry[] = [];
  for (let offset = 0, index = 0; offset < s.size; offset += ENTRY.size, index++) {
    const nameRel = relocs.get(offset + ENTRY.name);
    const name = nameRel && pointedString(elf, symbols[nameRel.symbol], nameRel.addend);
    if (name === undefined || name === "") {
      throw new XspliceError("EINVAL", `${label(s, index)} has no name of an old function`, {
        section: s.name,
      });
    }
    const entry: Entry = { index, offset, name, newSize: dv.getBigUint64(offset + ENTRY.newSize, true) };
    const newRel = relocs.get(offset + ENTRY.newAddr);
    if (newRel !== undefined) {
      const repl = replacementOf(symbols, newRel);
      if (repl === undefined) {
        const target = symbols[newRel.symbol]?.name || "a symbol";
        throw new XspliceError(
          "EINVAL",
          `${label(s, index, name)}: replacement ${target} is not a function defined in the payload`,
          { section: s.name, symbol: name },
        );
      }
      entry.replacement = repl;
    }
    entries.push(entry);
  }
  return entries;
}

/**
 * Fill old_addr, old_size and new_size of every entry, in `bytes` (the
 * intermediate object), by file offset; name and new_addr stay relocations.
 */
function fillEntries(elf: ElfFile, bytes: Uint8Array, target: Target): BuiltFunc[] {
  const s = elf.sectionByName(".xsplice.funcs");
  if (s === undefined) return [];
  const arch = archFor(elf.header.machine);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const seen = new Map<bigint, string>();
  const out: BuiltFunc[] = [];
  for (const e of readEntries(elf, s)) {
    const where = { section: s.name, symbol: e.name };
    const found = target.symbols.lookup(e.name);
    if (found.kind === "ambiguous") {
      const err = ambiguousName(
        `${label(s, e.index)}: old function`,
        e.name,
        target.path,
        target.symbols.filesOf(e.name),
      );
      throw new XspliceError(err.errno, err.message, where);
    }
    if (found.kind === "missing" || found.symbol.type !== STT.FUNC) {
      throw new XspliceError(
        "ENOENT",
        `${label(s, e.index)}: no function ${e.name} in target ${target.path}`,
        where,
      );
    }
    const old = found.symbol;
    if (old.size === 0n) {
      throw new XspliceError(
        "EINVAL",
        `${label(s, e.index, e.name)}: the target's symbol has size 0, old_size must not be 0`,
        where,
      );
    }
    const oldSize = Number(old.size);
    const prior = seen.get(old.value);
    if (prior !== undefined) {
      throw new XspliceError(
        "EINVAL",
        `${label(s, e.index, e.name)}: same old function as ${prior} (0x${old.value.toString(16)})`,
        where,
      );
    }
    seen.set(old.value, e.name);
    let newSize: number;
    if (e.replacement === undefined) {
      // XSPLICE_NOP: new_size is the macro's byte count; the payload reader checks its bounds.
      newSize = Number(e.newSize);
      if (newSize > oldSize) {
        throw new XspliceError(
          "EINVAL",
          `${label(s, e.index, e.name)}: NOP of ${newSize} bytes exceeds the function's ${oldSize}`,
          where,
        );
      }
    } else {
      const need = arch.minPatchSize(targetCode(target.elf, old.value, 16));
      if (oldSize < need) {
        throw new XspliceError(
          "EINVAL",
          `${label(s, e.index, e.name)}: function is ${oldSize} bytes, too small for a trampoline (needs ${need})`,
          where,
        );
      }
      newSize = Number(e.replacement.size);
      if (newSize === 0) {
        throw new XspliceError(
          "EINVAL",
          `${label(s, e.index, e.name)}: replacement ${e.replacement.name} has size 0`,
          where,
        );
      }
    }
    const at = s.offset + e.offset;
    dv.setBigUint64(at + ENTRY.newSize, BigInt(newSize), true);
    dv.setBigUint64(at + ENTRY.oldAddr, old.value, true);
    dv.setBigUint64(at + ENTRY.oldSize, old.size, true);
    const func: BuiltFunc = { name: e.name, oldAddr: old.value, oldSize, newSize, nop: !e.replacement };
    if (e.replacement) func.replacement = e.replacement.name;
    out.push(func);
  }
  return out;
}

/**
 * The payload's undefined symbols that the target defines, with their
 * link-time addresses (SPEC §1), and the rest, which the loader resolves
 * elsewhere (other payloads, the process's libraries: SPEC §2 order).
 */
function targetSymbolsOf(elf: ElfFile, target: Target): { symbols: TargetSymbol[]; external: string[] } {
  const symbols: TargetSymbol[] = [];
  const external: string[] = [];
  const done = new Set<string>();
  for (const sym of elf.symbols()) {
    if (sym.index === 0 || sym.section.kind !== "undefined" || sym.name === "" || done.has(sym.name))
      continue;
    // The GOT is the loader's business, not a symbol of the target.
    if (sym.name === "_GLOBAL_OFFSET_TABLE_") continue;
    done.add(sym.name);
    const found = target.symbols.lookup(sym.name);
    if (found.kind === "found") symbols.push({ name: sym.name, addr: found.symbol.value });
    else external.push(sym.name);
  }
  return { symbols, external };
}

/** Compile one source; the compiler's diagnostic becomes the error (EINVAL). */
function compile(cc: string, source: string, out: string, cflags: readonly string[]): void {
  runTool(
    cc,
    ["-c", ...BUILD_CFLAGS, `-I${INCLUDE_DIR}`, ...cflags, "-o", out, source],
    `compiling ${source}`,
  );
}

/**
 * Build a payload from C sources against `target` (SPEC §11) and write it to
 * `out`. Errors: a source that does not compile `EINVAL` with the compiler's
 * diagnostic; target unreadable `ENOENT`, not ELF `EINVAL`, without build-id
 * `EINVAL`; an old function not in the target `ENOENT`; one too small for a
 * trampoline `EINVAL`; anything the payload reader refuses in the result.
 */
export function buildPayload(opts: BuildOptions): BuildResult {
  if (opts.sources.length === 0) throw new XspliceError("EINVAL", "no source files to build");
  for (const src of opts.sources) checkSource(src);
  const cc = opts.cc ?? "cc";
  const cflags = opts.cflags ?? [];
  const target = readTarget(opts.target);
  const depends = opts.depends === undefined ? target.buildId : readDepends(opts.depends, target);

  const tmp = mkdtempSync(join(tmpdir(), "xsplice-build-"));
  try {
    const objects = opts.sources.map((src, i) => {
      const obj = join(tmp, `${i}-${basename(src).replace(/\.[^.]*$/, "")}.o`);
      compile(cc, src, obj, cflags);
      return obj;
    });

    return linkPayload({
      objects,
      target,
      depends,
      metadata: opts.name === undefined ? [] : [`name=${opts.name}`],
      cc,
      tmp,
      out: opts.out,
    });
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Inputs of {@link linkPayload}. */
export interface LinkInputs {
  /** Relocatable objects holding the code, the `.xsplice.funcs` entries (old fields still 0), hooks, `.modinfo`. */
  objects: string[];
  target: Target;
  /** `.xsplice.depends`. */
  depends: Uint8Array;
  /** Extra `key=value` strings for `.modinfo`. */
  metadata: string[];
  /** The C compiler, used to assemble the notes. */
  cc: string;
  /** A scratch directory the caller removes. */
  tmp: string;
  out: string;
}

/**
 * The second half of `xsplice build`, shared with `xsplice diff` (SPEC §11,
 * §13): link the payload code, fill every funcs entry from the target, add
 * the notes and `.xsplice.symbols`, link with a build-id, check the result
 * with the payload reader and write it atomically.
 */
export function linkPayload(inputs: LinkInputs): BuildResult {
  const { objects, target, depends, metadata, cc, tmp } = inputs;
  // Link the code first, so that the entries of every source are one array to fill.
  const code = join(tmp, "code.o");
  runTool("ld", ["-r", "-o", code, ...objects], "linking the payload code");
  const bytes = new Uint8Array(readFileSync(code));
  let elf: ElfFile;
  try {
    elf = readElf(bytes);
  } catch (err) {
    prefixed(err, "linked payload code");
  }
  if (elf.header.machine !== target.elf.header.machine) {
    throw new XspliceError(
      "EINVAL",
      `payload code is for machine ${elf.header.machine}, target ${target.path} for ${target.elf.header.machine}`,
    );
  }
  const funcs = fillEntries(elf, bytes, target);
  const { symbols, external } = targetSymbolsOf(elf, target);
  writeFileSync(code, bytes);

  // What the target's DWARF says of -flive-patching, carried in the payload for a target that
  // runs stripped: the loader cannot read it from the object as mapped (SPEC §12).
  const facts = livePatchingWarning(target.elf, target.path) === undefined ? [LIVE_PATCHING_METADATA] : [];
  facts.push(...libraryFacts(target));
  const gen = join(tmp, "xsplice-notes.s");
  writeFileSync(
    gen,
    generatedAssembly({ target: target.buildId, depends, symbols, metadata: [...metadata, ...facts] }),
  );
  const genObj = join(tmp, "xsplice-notes.o");
  runTool(cc, ["-c", "-o", genObj, gen], "assembling the payload notes");

  const linked = join(tmp, "payload.o");
  runTool("ld", ["-r", "--build-id=sha1", "-o", linked, code, genObj], "linking the payload");
  const final = readFileSync(linked);
  let payload: ReturnType<typeof readPayload>;
  try {
    payload = readPayload(final);
  } catch (err) {
    prefixed(err, "built payload failed its check");
  }

  // Atomic: a reader of `out` sees the old file or the whole new one.
  const out = resolve(inputs.out);
  const partial = `${out}.tmp${process.pid}`;
  try {
    writeFileSync(partial, final);
    renameSync(partial, out);
  } catch (err) {
    rmSync(partial, { force: true });
    const code = (err as NodeJS.ErrnoException).code;
    throw new XspliceError(code === "EACCES" ? "EACCES" : "ENOENT", `cannot write ${out} (${code})`);
  }
  return {
    path: out,
    buildId: hexBytes(payload.buildId),
    target: hexBytes(payload.target),
    depends: hexBytes(payload.depends),
    funcs,
    symbols,
    external,
  };
}
