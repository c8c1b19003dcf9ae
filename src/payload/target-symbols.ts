/**
 * How a payload's names resolve against a target object's symbol table
 * (SPEC §2): a global by its name; a static as `file.c#name` — the locals
 * that follow the STT_FILE symbol `file.c`, matched by its full name or its
 * base name; a bare static name only when exactly one file defines it. The
 * one implementation of that rule: the loader (`src/process/objects.ts`, over
 * a live process's objects) and the builders (`src/build/`, over the target
 * file) both index their symbols here, so a name means the same to both, and
 * an ambiguous one is the same error.
 */
import { basename } from "node:path";
import { XspliceError } from "../errors.ts";

/** How a name resolved: the symbol, several statics sharing the name, or nothing. */
export type Resolution<T> =
  | { kind: "found"; symbol: T }
  | { kind: "ambiguous"; candidates: T[] }
  | { kind: "missing" };

/** A symbol as the index keeps it: with the source file of a static. */
interface Entry<T> {
  symbol: T;
  file: string | undefined;
}

/** Name lookup over one object's symbols (`T` is the caller's symbol shape). */
export class NameIndex<T> {
  private readonly globals = new Map<string, { symbol: T; weak: boolean }>();
  private readonly locals = new Map<string, Entry<T>[]>();
  private readonly qualified = new Map<string, Entry<T>[]>();

  /**
   * A global (or weak) definition: the first of a name stays, unless it is
   * weak and this one is not — the definition the linker chose.
   */
  addGlobal(name: string, symbol: T, weak: boolean): void {
    const seen = this.globals.get(name);
    if (!seen || (seen.weak && !weak)) this.globals.set(name, { symbol, weak });
  }

  /** True when `name` has a global definition. */
  hasGlobal(name: string): boolean {
    return this.globals.has(name);
  }

  /** A static, with the STT_FILE name it follows in the table (undefined: none). */
  addLocal(name: string, symbol: T, file: string | undefined): void {
    const entry = { symbol, file };
    push(this.locals, name, entry);
    if (file === undefined) return;
    push(this.qualified, `${file}#${name}`, entry);
    const base = basename(file);
    if (base !== file) push(this.qualified, `${base}#${name}`, entry);
  }

  /** Resolve `name` per SPEC §2 (see the module comment). */
  resolve(name: string): Resolution<T> {
    if (name.lastIndexOf("#") > 0) return pick(this.qualified.get(name));
    const g = this.globals.get(name);
    if (g) return { kind: "found", symbol: g.symbol };
    return pick(this.locals.get(name));
  }

  /** The files of the statics a bare `name` is ambiguous between (for messages). */
  filesOf(name: string): string[] {
    const list = (name.lastIndexOf("#") > 0 ? this.qualified : this.locals).get(name) ?? [];
    return list.map((e) => e.file ?? "?");
  }
}

function push<E>(map: Map<string, E[]>, key: string, v: E): void {
  const list = map.get(key);
  if (list) list.push(v);
  else map.set(key, [v]);
}

function pick<T>(list: Entry<T>[] | undefined): Resolution<T> {
  if (!list || list.length === 0) return { kind: "missing" };
  if (list.length === 1) return { kind: "found", symbol: list[0]!.symbol };
  return { kind: "ambiguous", candidates: list.map((e) => e.symbol) };
}

/**
 * The error for a name several statics share (SPEC §2: a bare static name
 * resolves only when unique): `EINVAL`, naming the files and the way out.
 */
export function ambiguousName(
  what: string,
  name: string,
  object: string,
  files: readonly string[],
): XspliceError {
  const bare = name.slice(name.lastIndexOf("#") + 1);
  return new XspliceError(
    "EINVAL",
    `${what} '${name}' is ambiguous in ${object}: ${files.length} statics (${files.join(", ")}); name one as "file.c#${bare}"`,
    { symbol: name },
  );
}
