/**
 * The ELF objects mapped in a live process — the executable, its shared
 * libraries and the vDSO — with what the loader and the safety check need of
 * each: load bias, build-id (SPEC §2, §4 target checks), address range, symbol
 * lookup (SPEC §2 resolution order, `file.c#name` statics), and CFI for stack
 * walks (SPEC §6).
 *
 * Files are read through `/proc/PID/map_files/`, which gives the very file
 * that is mapped even after it was deleted or replaced on disk, or lives in
 * another mount namespace — never through the path the target's maps name
 * (the target controls that name: issue #11 item 7), except, for a caller
 * without the right to map_files, a path that names the mapped inode itself.
 * Only regular files are read, and none above `MAX_OBJECT_FILE_SIZE` (issue
 * #11 item 10). Listing an object reads only its head (ELF header, program
 * headers, build-id notes); the whole file, and its separate debug file, are
 * read when something first needs its sections (symbols, CFI): an upload needs
 * those of the target alone, and libc with its debug file is 6 MB. A caller
 * may pass a bounded cache (`XspliceContext.objectFiles`) to keep parsed files
 * per (device, inode, mtime, size): libc's symbol tables take time to index;
 * without one nothing is kept.
 */
import { closeSync, existsSync, statSync } from "node:fs";
import type { BoundedCache } from "../bounded-cache.ts";
import { ET, PT, SHT, STB, STT, STV } from "../elf/defs.ts";
import { EhFrame } from "../elf/eh-frame.ts";
import { type ElfFile, readElf } from "../elf/file.ts";
import { readElfHead } from "../elf/head.ts";
import type { ProgramHeader } from "../elf/segment.ts";
import type { ElfSymbol } from "../elf/symbol.ts";
import { XspliceError } from "../errors.ts";
import { hex } from "../hex.ts";
import { NameIndex, type Resolution } from "../payload/target-symbols.ts";
import { type OpenedFile, openRegularFile, readOpened } from "../regular-file.ts";
import { isFileMapping, type Mapping, mappingAt, procError, readMaps } from "./maps.ts";
import { readMemory } from "./memory.ts";

/** What kind of object a mapping belongs to. */
export type ObjectKind = "executable" | "library" | "vdso";

/** A symbol of a mapped object, with its runtime address. */
export interface ObjectSymbol {
  name: string;
  /** Runtime address: `value` plus the load bias (TLS symbols: the offset in the TLS block, unbiased). */
  address: bigint;
  /** Link-time `st_value`. */
  value: bigint;
  size: bigint;
  /** `STT` */
  type: number;
  /** `STB` */
  bind: number;
  /** For a local symbol, the `STT_FILE` name that precedes it in `.symtab` (`file.c` of `file.c#name`). */
  file?: string;
  /** Found in `.dynsym` (exported to the dynamic linker) rather than `.symtab`. */
  dynamic: boolean;
  /**
   * For a thread-local of the executable: its offset from the thread pointer
   * (`%fs:tpoff`), the value TPOFF32/GOTTPOFF need. Libraries' offsets live in
   * the dynamic linker's private data and are not given.
   */
  tpoff?: bigint;
}

/** How a name resolved: the symbol, several statics sharing a bare name, or nothing. */
export type SymbolResolution = Resolution<ObjectSymbol>;

export type { Resolution } from "../payload/target-symbols.ts";

/** An ELF object mapped in a process. */
export interface MappedObject {
  /** Path as in `/proc/PID/maps` (`[vdso]` for the vDSO). */
  path: string;
  kind: ObjectKind;
  /** The file on disk was deleted or replaced after it was mapped. */
  deleted: boolean;
  /** Runtime address minus link-time address. */
  bias: bigint;
  /** GNU build-id as lowercase hex, undefined when the object has none. */
  buildId: string | undefined;
  /** Lowest mapped address of the object. */
  start: bigint;
  /** One past its highest mapped address. */
  end: bigint;
  /** Its lines of `/proc/PID/maps`. */
  mappings: Mapping[];
  /** Its program headers (known without reading the whole file). */
  programHeaders: ProgramHeader[];
  /**
   * The parsed ELF file (from map_files, or the process memory for the vDSO), read on
   * first use: `ENOENT` when the mapping is gone or its file changed since the listing,
   * `EINVAL` when its section table is malformed.
   */
  readonly elf: ElfFile;
  /** The separate debug file whose `.symtab` is used, when the object has none of its own (read with `elf`). */
  readonly debugFile?: string;
  /** That debug file, parsed. */
  readonly debugElf?: ElfFile;
  /** Position in the dynamic linker's `link_map` list (load order), when known. */
  loadIndex: number;
  /** True when `addr` is inside one of the object's mappings. */
  contains(addr: bigint): boolean;
  /** A name (bare, or `file.c#name` for a static) resolved per SPEC §2. */
  resolve(name: string): SymbolResolution;
  /** `resolve`, giving undefined when the name is missing or an ambiguous bare static. */
  lookup(name: string): ObjectSymbol | undefined;
  /** An exported dynamic symbol (default version), as the dynamic linker would bind it. */
  dynamicLookup(name: string): ObjectSymbol | undefined;
  /** The function or object containing runtime address `addr`, and the offset into it. */
  symbolAt(addr: bigint): { symbol: ObjectSymbol; offset: bigint } | undefined;
  /** The object's `.eh_frame` CFI (link-time addresses), or undefined when it has none. */
  ehFrame(): EhFrame | undefined;
}

/** Options of `mappedObjects`. */
export interface MappedObjectsOptions {
  /** The process's maps, if already read (saves a read and keeps one consistent view). */
  maps?: Mapping[];
  /** Read target memory (for the vDSO and the link map); default `/proc/PID/mem`. */
  read?: (addr: bigint, len: number) => Uint8Array;
  /** Where separate debug files live. Default `/usr/lib/debug`. */
  debugRoot?: string;
  /** Parsed files kept across calls (`XspliceContext.objectFiles`); default none. */
  cache?: ObjectFileCache;
  /**
   * Filled with one line per mapped file that looks like an object but was
   * not read (above `MAX_OBJECT_FILE_SIZE`, not a regular file), for messages.
   */
  refused?: string[];
}

/**
 * Largest object file read (SPEC §2 target objects): far above any real
 * executable or library, far below what would exhaust xsplice. A target can
 * map any file; one above this is not a patch target and is reported in
 * `refused`.
 */
export const MAX_OBJECT_FILE_SIZE = 512 * 1024 * 1024;

/** A mapped file as listed (its head), with the whole file and its symbol index added on first use. */
export interface ObjectFile {
  /** `dev:ino`, to tell the executable. */
  statKey: string;
  /** `dev:ino:mtime:size`: the file a later read must find again. */
  key: string;
  programHeaders: ProgramHeader[];
  buildId: string | undefined;
  /** Read on first use. */
  loaded?: LoadedFile;
  /** Built on first lookup. */
  index?: SymbolIndex;
}

/** The whole file, parsed, and the separate debug file used for its `.symtab`. */
interface LoadedFile {
  elf: ElfFile;
  debugFile?: string;
  debugElf?: ElfFile;
}

/** Parsed object files by (device, inode, mtime, size). */
export type ObjectFileCache = BoundedCache<string, ObjectFile>;

/**
 * Every ELF object mapped in process `pid`, in load order (the dynamic
 * linker's `link_map` list when it can be read; otherwise the executable
 * first, then by address). `ESRCH` when the process is gone.
 */
export function mappedObjects(pid: number, options: MappedObjectsOptions = {}): MappedObject[] {
  const maps = options.maps ?? readMaps(pid);
  const read = options.read ?? ((addr: bigint, len: number) => readMemory(pid, addr, len));
  const debugRoot = options.debugRoot ?? "/usr/lib/debug";
  let exeKey: string | undefined;
  try {
    const st = statSync(`/proc/${pid}/exe`);
    exeKey = `${st.dev}:${st.ino}`;
  } catch (err) {
    if (!existsSync(`/proc/${pid}`)) throw procError(err, pid, `/proc/${pid}/exe`);
    // A kernel thread or a zombie has no exe; every object is then a library.
  }

  const objects: MappedObject[] = [];
  // Group file mappings by the file they map; an object starts at a mapping of file offset 0.
  const groups = new Map<string, Mapping[]>();
  for (const m of maps) {
    if (!isFileMapping(m)) continue;
    const key = `${m.dev} ${m.inode} ${m.path}`;
    const g = groups.get(key);
    if (g) g.push(m);
    else groups.set(key, [m]);
  }
  const files = options.cache ?? new Map<string, ObjectFile>();
  for (const group of groups.values()) {
    // The same file mapped twice (dlopen'd twice via different paths is one group; a data file
    // mapped twice at offset 0 is not ELF anyway): each offset-0 mapping starts one object.
    const heads = group.filter((m) => m.offset === 0n);
    for (const head of heads) {
      const file = openObjectFile(pid, head, debugRoot, files, options.refused);
      if (!file) continue;
      const kind: ObjectKind = file.statKey === exeKey ? "executable" : "library";
      const mine = ownMappings(group, head, file.programHeaders);
      const load = () => loadObjectFile(pid, head, file, debugRoot);
      objects.push(
        makeObject(head.path, kind, head.deleted, file, load, bias(file.programHeaders, head.start), mine),
      );
    }
  }
  const vdsoMap = maps.find((m) => m.path === "[vdso]");
  if (vdsoMap) {
    try {
      const bytes = read(vdsoMap.start, Number(vdsoMap.end - vdsoMap.start));
      const elf = readElf(bytes);
      // Read from memory, small, and never cached (its key would be the process's).
      const file: ObjectFile = {
        statKey: "[vdso]",
        key: "[vdso]",
        programHeaders: elf.programHeaders,
        buildId: safeBuildId(elf),
        loaded: { elf },
      };
      const b = bias(elf.programHeaders, vdsoMap.start);
      objects.push(makeObject("[vdso]", "vdso", false, file, () => file.loaded!, b, [vdsoMap]));
    } catch (err) {
      if (!(err instanceof XspliceError) || err.errno === "ESRCH") throw err;
      // An unreadable vDSO only costs stack walks through it their CFI; the scan still covers them.
    }
  }
  orderByLinkMap(objects, maps, read);
  return objects;
}

/** The object with this build-id (hex, any case), or undefined. */
export function findObjectByBuildId(
  objects: readonly MappedObject[],
  buildId: string,
): MappedObject | undefined {
  const want = buildId.toLowerCase();
  return objects.find((o) => o.buildId === want);
}

/** The object whose mappings contain runtime address `addr`. */
export function objectAt(objects: readonly MappedObject[], addr: bigint): MappedObject | undefined {
  return objects.find((o) => addr >= o.start && addr < o.end && o.contains(addr));
}

// ---------------------------------------------------------------------------------------------

/** What `openObjectFile` needs of a cache: a `BoundedCache`, or a plain Map for one call. */
interface FileCache {
  get(key: string): ObjectFile | undefined;
  set(key: string, value: ObjectFile): unknown;
}

/**
 * The mapped file behind `head`: through map_files; only when that is refused
 * (a caller without CAP_SYS_ADMIN) through the path, and then only if the path
 * is a regular file of the mapped inode, on the opened descriptor too.
 */
function openMapped(pid: number, head: Mapping): OpenedFile | undefined {
  const what = `object ${JSON.stringify(head.path)} (mapped at ${hex(head.start)})`;
  try {
    return openRegularFile(
      `/proc/${pid}/map_files/${head.start.toString(16)}-${head.end.toString(16)}`,
      what,
    );
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== "EPERM" && code !== "EACCES") return undefined; // gone, or not a regular file
  }
  if (head.deleted) return undefined; // the path names another file now
  try {
    const st = statSync(head.path); // never opened unless it is a regular file of the mapped inode
    if (!st.isFile() || BigInt(st.ino) !== head.inode) return undefined;
    const opened = openRegularFile(head.path, what);
    if (BigInt(opened.stat.ino) === head.inode && opened.stat.dev === st.dev) return opened;
    closeSync(opened.fd);
  } catch {
    // unreadable: not a patch target
  }
  return undefined;
}

function openObjectFile(
  pid: number,
  head: Mapping,
  debugRoot: string,
  cache: FileCache,
  refused: string[] | undefined,
): ObjectFile | undefined {
  const opened = openMapped(pid, head);
  if (!opened) return undefined;
  try {
    const st = opened.stat;
    if (BigInt(st.ino) !== head.inode) return undefined; // map_files of a mapping that changed meanwhile
    const statKey = `${st.dev}:${st.ino}`;
    const key = fileKey(st);
    const cached = cache.get(key);
    if (cached) return cached;
    if (st.size < 64 || !hasElfMagic(readOpened(opened, 4, head.path))) return undefined;
    if (st.size > MAX_OBJECT_FILE_SIZE) {
      refused?.push(
        `${JSON.stringify(head.path)} is ${st.size} bytes, above the ${MAX_OBJECT_FILE_SIZE}-byte limit for objects`,
      );
      return undefined;
    }
    let entry: ObjectFile;
    try {
      const h = readElfHead((offset, length) => readOpened(opened, length, head.path, offset), st.size);
      if (h.header.type !== ET.DYN && h.header.type !== ET.EXEC) return undefined;
      const buildId = h.buildId && Buffer.from(h.buildId).toString("hex");
      entry = { statKey, key, programHeaders: h.programHeaders, buildId };
      if (buildId === undefined) {
        // No id in a note segment: only the section table can tell (SPEC §2 target checks).
        entry.loaded = withDebugFile(readElf(readOpened(opened, st.size, head.path)), debugRoot);
        entry.buildId = safeBuildId(entry.loaded.elf);
      }
    } catch (err) {
      if (err instanceof XspliceError) return undefined; // an ELF we cannot read is not a patch target
      throw err;
    }
    cache.set(key, entry);
    return entry;
  } finally {
    closeSync(opened.fd);
  }
}

function fileKey(st: { dev: number; ino: number; mtimeMs: number; size: number }): string {
  return `${st.dev}:${st.ino}:${st.mtimeMs}:${st.size}`;
}

/**
 * The whole file of a listed object, read once (kept on `file`, so in the caller's cache):
 * through the same map_files entry, which must still be the file that was listed.
 */
function loadObjectFile(pid: number, head: Mapping, file: ObjectFile, debugRoot: string): LoadedFile {
  if (file.loaded) return file.loaded;
  const what = `object ${JSON.stringify(head.path)} (mapped at ${hex(head.start)})`;
  const opened = openMapped(pid, head);
  if (!opened) throw new XspliceError("ENOENT", `${what} is no longer mapped in process ${pid}`, { pid });
  try {
    if (fileKey(opened.stat) !== file.key)
      throw new XspliceError("ENOENT", `${what} changed since it was listed`, { pid });
    file.loaded = withDebugFile(readElf(readOpened(opened, opened.stat.size, head.path)), debugRoot);
    return file.loaded;
  } finally {
    closeSync(opened.fd);
  }
}

/** The file, with the separate debug file of its build-id when it has no `.symtab` of its own. */
function withDebugFile(elf: ElfFile, debugRoot: string): LoadedFile {
  if (elf.symbolTable()) return { elf };
  const id = safeBuildId(elf);
  const debug = id && `${debugRoot}/.build-id/${id.slice(0, 2)}/${id.slice(2)}.debug`;
  const debugElf = debug ? readDebugFile(debug) : undefined;
  if (debug && debugElf && safeBuildId(debugElf) === id && debugElf.symbolTable())
    return { elf, debugElf, debugFile: debug };
  return { elf };
}

/** A separate debug file (its name is hex from the build-id, under the debug root), bounded like objects. */
function readDebugFile(path: string): ElfFile | undefined {
  let opened: OpenedFile | undefined;
  try {
    opened = openRegularFile(path, path);
    if (opened.stat.size > MAX_OBJECT_FILE_SIZE) return undefined;
    return readElf(readOpened(opened, opened.stat.size, path));
  } catch (err) {
    if (err instanceof XspliceError || (err as NodeJS.ErrnoException).code !== undefined) return undefined;
    throw err;
  } finally {
    if (opened) closeSync(opened.fd);
  }
}

function hasElfMagic(buf: Uint8Array): boolean {
  return buf[0] === 0x7f && buf[1] === 0x45 && buf[2] === 0x4c && buf[3] === 0x46;
}

function safeBuildId(elf: ElfFile): string | undefined {
  try {
    const id = elf.buildId();
    return id ? Buffer.from(id).toString("hex") : undefined;
  } catch (err) {
    if (err instanceof XspliceError) return undefined;
    throw err;
  }
}

/** The PT_LOAD segments sorted by address. */
function loads(phs: readonly ProgramHeader[]) {
  return phs.filter((p) => p.type === PT.LOAD).sort((a, b) => (a.vaddr < b.vaddr ? -1 : 1));
}

/**
 * Load bias from the mapping of file offset 0: the kernel (or ld.so) maps the
 * lowest PT_LOAD, which contains file offset 0, at its page-aligned vaddr plus the bias.
 */
function bias(phs: readonly ProgramHeader[], headStart: bigint): bigint {
  const first = loads(phs).find((p) => p.offset === 0) ?? loads(phs)[0];
  const page = 4096n;
  const vaddr = first ? first.vaddr - BigInt(first.offset) : 0n;
  return headStart - (vaddr & ~(page - 1n));
}

/** The mappings of `group` that belong to the object starting at `head`: within its PT_LOAD span. */
function ownMappings(group: Mapping[], head: Mapping, phs: readonly ProgramHeader[]): Mapping[] {
  const segs = loads(phs);
  const last = segs[segs.length - 1];
  const b = bias(phs, head.start);
  const end = last ? b + last.vaddr + last.memsz : head.end;
  return group.filter((m) => m.start >= head.start && m.start < end);
}

/** Whether a failure to read an object's whole file leaves it without symbols and CFI (else it is a bug). */
function unreadable(err: unknown): boolean {
  return err instanceof XspliceError && err.errno !== "ESRCH";
}

function makeObject(
  path: string,
  kind: ObjectKind,
  deleted: boolean,
  file: ObjectFile,
  load: () => LoadedFile,
  loadBias: bigint,
  mappings: Mapping[],
): MappedObject {
  const sorted = [...mappings].sort((a, b) => (a.start < b.start ? -1 : 1));
  let eh: EhFrame | null | undefined;
  const index = (): SymbolIndex => {
    if (!file.index) {
      let loaded: LoadedFile | undefined;
      try {
        loaded = load();
      } catch (err) {
        // An object whose file cannot be read again (unmapped meanwhile, malformed sections)
        // has no symbols to offer: lookups go on to the other objects, as when it was skipped.
        if (!unreadable(err)) throw err;
      }
      file.index = loaded
        ? new SymbolIndex(loaded.elf, loaded.debugElf)
        : new SymbolIndex(undefined, undefined);
    }
    return file.index;
  };
  const tlsBlock = kind === "executable" ? executableTlsOffset(file.programHeaders) : undefined;
  const bind = (s: IndexedSymbol | undefined): ObjectSymbol | undefined => {
    if (!s) return undefined;
    if (s.type !== STT.TLS) return { ...s, address: s.value + loadBias };
    return tlsBlock === undefined
      ? { ...s, address: s.value }
      : { ...s, address: s.value, tpoff: s.value - tlsBlock };
  };
  const obj: MappedObject = {
    path,
    kind,
    deleted,
    bias: loadBias,
    buildId: file.buildId,
    start: sorted[0]?.start ?? 0n,
    end: sorted[sorted.length - 1]?.end ?? 0n, // mappings never overlap
    mappings: sorted,
    programHeaders: file.programHeaders,
    get elf() {
      return load().elf;
    },
    get debugFile() {
      return load().debugFile;
    },
    get debugElf() {
      return load().debugElf;
    },
    loadIndex: Number.MAX_SAFE_INTEGER,
    contains: (addr) => mappingAt(sorted, addr) !== undefined,
    resolve(name) {
      const r = index().resolve(name);
      if (r.kind === "found") return { kind: "found", symbol: bind(r.symbol)! };
      if (r.kind === "ambiguous") return { kind: "ambiguous", candidates: r.candidates.map((c) => bind(c)!) };
      return r;
    },
    lookup(name) {
      const r = this.resolve(name);
      return r.kind === "found" ? r.symbol : undefined;
    },
    dynamicLookup: (name) => bind(index().dynamic(name)),
    symbolAt(addr) {
      const s = index().at(addr - loadBias);
      return s && { symbol: bind(s)!, offset: addr - loadBias - s.value };
    },
    ehFrame() {
      if (eh === undefined) {
        try {
          eh = loadEhFrame(load().elf) ?? null;
        } catch (err) {
          if (!unreadable(err)) throw err;
          eh = null; // stack walks through it rely on the scan, as for an object without CFI
        }
      }
      return eh ?? undefined;
    },
  };
  return obj;
}

/**
 * Where the executable's TLS block sits below the thread pointer (x86-64 uses
 * TLS variant II: the executable's block ends at %fs:0). glibc places it at
 * `roundup(memsz - firstbyte, align) + firstbyte` below, with firstbyte the
 * misalignment of the segment's address (elf/dl-tls.c, TLS_TCB_AT_TP).
 */
function executableTlsOffset(phs: readonly ProgramHeader[]): bigint | undefined {
  const tls = phs.find((p) => p.type === PT.TLS);
  if (!tls || tls.memsz === 0n) return undefined;
  const align = tls.align > 0n ? tls.align : 1n;
  const firstbyte = -tls.vaddr & (align - 1n);
  return ((tls.memsz - firstbyte + align - 1n) / align) * align + firstbyte;
}

function loadEhFrame(elf: ElfFile): EhFrame | undefined {
  const eh = elf.sectionByName(".eh_frame");
  if (!eh || eh.type === SHT.NOBITS || eh.size === 0) return undefined;
  const hdr = elf.sectionByName(".eh_frame_hdr");
  return new EhFrame({
    ehFrame: eh.data(),
    ehFrameAddr: eh.addr,
    ...(hdr && hdr.type !== SHT.NOBITS ? { ehFrameHdr: hdr.data(), ehFrameHdrAddr: hdr.addr } : {}),
  });
}

// ---------------------------------------------------------------------------------------------

type IndexedSymbol = Omit<ObjectSymbol, "address">;

/** Name and address indexes over an object's symbol tables, built on first use and cached with the file. */
class SymbolIndex {
  /** Names by the one SPEC §2 rule (`src/payload/target-symbols.ts`). */
  private readonly names = new NameIndex<IndexedSymbol>();
  private readonly exported = new Map<string, IndexedSymbol>();
  private readonly byAddress: IndexedSymbol[];

  /** `elf` undefined: an object whose file could not be read, without symbols. */
  constructor(elf: ElfFile | undefined, debug: ElfFile | undefined) {
    const symtabOwner = elf?.symbolTable() ? elf : debug;
    const table = symtabOwner ? symtabOwner.symbols() : [];
    const dyn = elf ? dynamicSymbols(elf) : new Map<string, IndexedSymbol>();
    let file: string | undefined;
    const all: IndexedSymbol[] = [];
    for (const s of table) {
      if (s.type === STT.FILE) {
        file = s.name;
        continue;
      }
      if (!isAddressable(s)) continue;
      const sym: IndexedSymbol = {
        name: s.name,
        value: s.value,
        size: s.size,
        type: s.type,
        bind: s.bind,
        dynamic: false,
      };
      if (s.bind === STB.LOCAL) {
        if (file !== undefined) sym.file = file;
        this.names.addLocal(s.name, sym, file);
      } else this.names.addGlobal(s.name, sym, s.bind === STB.WEAK);
      all.push(sym);
    }
    for (const sym of dyn.values()) {
      this.exported.set(sym.name, sym);
      if (!this.names.hasGlobal(sym.name)) {
        this.names.addGlobal(sym.name, sym, sym.bind === STB.WEAK);
        all.push(sym);
      }
    }
    this.byAddress = all
      .filter((s) => s.type === STT.FUNC || s.type === STT.OBJECT || s.type === STT.GNU_IFUNC)
      .sort((a, b) => (a.value < b.value ? -1 : a.value > b.value ? 1 : Number(b.size - a.size)));
  }

  resolve(name: string): Resolution<IndexedSymbol> {
    return this.names.resolve(name);
  }

  dynamic(name: string): IndexedSymbol | undefined {
    return this.exported.get(name);
  }

  at(value: bigint): IndexedSymbol | undefined {
    const list = this.byAddress;
    let lo = 0;
    let hi = list.length - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid]!.value <= value) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    // Walk back over symbols at lower addresses: a large function may contain the address past a small one.
    for (let i = best; i >= 0 && i > best - 64; i--) {
      const s = list[i]!;
      if (value >= s.value && (value < s.value + s.size || (s.size === 0n && value === s.value))) return s;
    }
    return undefined;
  }
}

function isAddressable(s: ElfSymbol): boolean {
  if (s.name === "" || s.section.kind !== "section") return false;
  return (
    s.type === STT.FUNC ||
    s.type === STT.OBJECT ||
    s.type === STT.GNU_IFUNC ||
    s.type === STT.TLS ||
    s.type === STT.NOTYPE
  );
}

/**
 * Exported `.dynsym` symbols by name. Where a name has several versions
 * (`memcpy@GLIBC_2.2.5`, `memcpy@@GLIBC_2.14`), the default one — without the
 * hidden bit in `.gnu.version` — is what an unversioned reference binds to.
 */
function dynamicSymbols(elf: ElfFile): Map<string, IndexedSymbol> {
  const out = new Map<string, IndexedSymbol>();
  let syms: ElfSymbol[];
  try {
    syms = elf.dynamicSymbols();
  } catch (err) {
    if (err instanceof XspliceError) return out;
    throw err;
  }
  const versym = elf.sections.find((s) => s.type === SHT.VERSYM);
  const vs = versym?.data();
  const hidden = (i: number) =>
    vs !== undefined && i * 2 + 1 < vs.length && ((vs[i * 2 + 1]! << 8) & 0x8000) !== 0;
  for (const s of syms) {
    if (!isAddressable(s) || s.bind === STB.LOCAL) continue;
    if (s.visibility !== STV.DEFAULT && s.visibility !== STV.PROTECTED) continue;
    const isHidden = hidden(s.index);
    const prev = out.get(s.name);
    if (prev && isHidden) continue;
    out.set(s.name, {
      name: s.name,
      value: s.value,
      size: s.size,
      type: s.type,
      bind: s.bind,
      dynamic: true,
    });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

/**
 * Sort objects into the dynamic linker's load order by walking `r_debug.r_map`
 * (found through `DT_DEBUG` in the executable's dynamic section). Objects the
 * list does not name (the vDSO has no entry of its own on every libc) keep the
 * executable-first, then-by-address order after those it names.
 */
function orderByLinkMap(
  objects: MappedObject[],
  maps: Mapping[],
  read: (a: bigint, n: number) => Uint8Array,
) {
  const byAddr = (a: MappedObject, b: MappedObject) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0);
  objects.sort((a, b) => (a.kind === "executable" ? -1 : b.kind === "executable" ? 1 : byAddr(a, b)));
  const exe = objects.find((o) => o.kind === "executable");
  const order = exe ? linkMapBiases(exe, maps, read) : [];
  for (const [i, o] of objects.entries()) {
    const at = order.findIndex(
      (l) => l.bias === o.bias && (l.dynamic === undefined || o.contains(l.dynamic)),
    );
    o.loadIndex = at >= 0 ? at : order.length + i;
  }
  objects.sort((a, b) => a.loadIndex - b.loadIndex);
}

function linkMapBiases(
  exe: MappedObject,
  maps: Mapping[],
  read: (a: bigint, n: number) => Uint8Array,
): { bias: bigint; dynamic?: bigint }[] {
  try {
    const dynPh = exe.programHeaders.find((p) => p.type === PT.DYNAMIC);
    if (!dynPh) return [];
    const dynAddr = dynPh.vaddr + exe.bias;
    const dyn = read(dynAddr, Number(dynPh.memsz));
    const dv = new DataView(dyn.buffer, dyn.byteOffset, dyn.byteLength);
    let rDebug = 0n;
    for (let off = 0; off + 16 <= dyn.length; off += 16) {
      const tag = dv.getBigInt64(off, true);
      if (tag === 0n) break;
      if (tag === 21n) rDebug = dv.getBigUint64(off + 8, true); // DT_DEBUG, filled in by ld.so
    }
    if (rDebug === 0n || !mappingAt(maps, rDebug)) return [];
    const word = (addr: bigint) => new DataView(read(addr, 8).buffer).getBigUint64(0, true);
    let lm = word(rDebug + 8n); // r_debug.r_map
    const out: { bias: bigint; dynamic?: bigint }[] = [];
    for (let i = 0; lm !== 0n && i < 4096; i++) {
      if (!mappingAt(maps, lm)) break;
      const entry = read(lm, 40); // l_addr, l_name, l_ld, l_next, l_prev
      const ev = new DataView(entry.buffer, entry.byteOffset, 40);
      const l: { bias: bigint; dynamic?: bigint } = { bias: ev.getBigUint64(0, true) };
      const ld = ev.getBigUint64(16, true);
      if (ld !== 0n) l.dynamic = ld;
      out.push(l);
      lm = ev.getBigUint64(24, true);
    }
    return out;
  } catch (err) {
    if (err instanceof XspliceError && err.errno !== "ESRCH") return [];
    throw err;
  }
}
