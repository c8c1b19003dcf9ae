/**
 * Parsers for `readelf -W` and `nm -P` output, the oracles of the ELF reader
 * tests. They read only what the tests compare and fail loudly on lines they
 * do not understand, so a format change in binutils cannot pass silently.
 */
import { tool } from "../helpers/cc.ts";

/** `readelf -hW`: "Key: value" pairs. */
export function readelfHeader(file: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of tool("readelf", ["-hW", file]).split("\n")) {
    const m = /^\s{2}([^:]+):\s+(.*?)\s*$/.exec(line);
    if (m) out.set(m[1]!, m[2]!);
  }
  return out;
}

/** One row of `readelf -SW`. */
export interface ReadelfSection {
  index: number;
  name: string;
  type: string;
  addr: bigint;
  offset: number;
  size: number;
  entsize: number;
  flags: string;
  link: number;
  info: number;
  align: bigint;
}

/** `readelf -SW`. */
export function readelfSections(file: string): ReadelfSection[] {
  const out: ReadelfSection[] = [];
  const re =
    /^\s*\[\s*(\d+)\]\s(.{17}\S*)\s+(\S+)\s+([0-9a-f]{16})\s([0-9a-f]{6,})\s([0-9a-f]{6,})\s([0-9a-f]{2,})\s(.{3}\S*)\s+(\d+)\s+(\d+)\s+(\d+)$/;
  for (const line of tool("readelf", ["-SW", file]).split("\n")) {
    if (!/^\s*\[\s*\d+\]/.test(line)) continue;
    const m = re.exec(line);
    if (!m) throw new Error(`unparsed readelf -S line: ${line}`);
    out.push({
      index: Number(m[1]),
      name: m[2]!.trim(),
      type: m[3]!,
      addr: BigInt(`0x${m[4]}`),
      offset: Number.parseInt(m[5]!, 16),
      size: Number.parseInt(m[6]!, 16),
      entsize: Number.parseInt(m[7]!, 16),
      flags: m[8]!.trim(),
      link: Number(m[9]),
      info: Number(m[10]),
      align: BigInt(m[11]!),
    });
  }
  return out;
}

/** One row of `readelf -sW`. */
export interface ReadelfSymbol {
  num: number;
  value: bigint;
  size: bigint;
  type: string;
  bind: string;
  vis: string;
  ndx: string;
  name: string;
}

/** `readelf -sW`: symbols per table name. */
export function readelfSymbols(file: string): Map<string, ReadelfSymbol[]> {
  const out = new Map<string, ReadelfSymbol[]>();
  let current: ReadelfSymbol[] | undefined;
  const re = /^\s*(\d+): ([0-9a-f]{16})\s+(\d+|0x[0-9a-f]+) (\S+)\s+(\S+)\s+(\S+)\s+(\S+) ?(.*)$/;
  for (const line of tool("readelf", ["-sW", file]).split("\n")) {
    const head = /^Symbol table '(.+)' contains (\d+) entr/.exec(line);
    if (head) {
      current = [];
      out.set(head[1]!, current);
      continue;
    }
    if (!/^\s*\d+:/.test(line)) continue;
    const m = re.exec(line);
    if (!m || !current) throw new Error(`unparsed readelf -s line: ${line}`);
    current.push({
      num: Number(m[1]),
      value: BigInt(`0x${m[2]}`),
      size: BigInt(m[3]!),
      type: m[4]!,
      bind: m[5]!,
      vis: m[6]!,
      ndx: m[7]!,
      name: m[8]!,
    });
  }
  return out;
}

/** One row of `readelf -rW`. */
export interface ReadelfRela {
  offset: bigint;
  sym: number;
  type: number;
  typeName: string;
  addend: bigint;
}

/** `readelf -rW`: relocations per section name, with the section's offset. */
export function readelfRelocs(file: string): Map<string, { offset: number; relocs: ReadelfRela[] }> {
  const out = new Map<string, { offset: number; relocs: ReadelfRela[] }>();
  let current: ReadelfRela[] | undefined;
  for (const line of tool("readelf", ["-rW", file]).split("\n")) {
    const head = /^Relocation section '(.+)' at offset 0x([0-9a-f]+) contains (\d+) entr/.exec(line);
    if (head) {
      current = [];
      out.set(head[1]!, { offset: Number.parseInt(head[2]!, 16), relocs: current });
      continue;
    }
    const m = /^([0-9a-f]{16})\s+([0-9a-f]{16}) (\S+)\s+(.*)$/.exec(line);
    if (!m) continue;
    if (!current) throw new Error(`relocation outside a section: ${line}`);
    const info = BigInt(`0x${m[2]}`);
    const rest = m[4]!;
    // "value name + hex" / "value name - hex" when there is a symbol, else a bare hex addend.
    const signed = / ([+-]) ([0-9a-f]+)$/.exec(rest);
    let addend: bigint;
    if (signed) addend = (signed[1] === "-" ? -1n : 1n) * BigInt(`0x${signed[2]}`);
    else if (/^[0-9a-f]+$/.test(rest.trim())) addend = BigInt(`0x${rest.trim()}`);
    else throw new Error(`unparsed readelf -r addend: ${line}`);
    current.push({
      offset: BigInt(`0x${m[1]}`),
      sym: Number(info >> 32n),
      type: Number(info & 0xffffffffn),
      typeName: m[3]!,
      addend,
    });
  }
  return out;
}

/** One note of `readelf -nW`. */
export interface ReadelfNote {
  container: string;
  owner: string;
  descsz: number;
  description: string;
  buildId?: string;
}

/** `readelf -nW`. */
export function readelfNotes(file: string): ReadelfNote[] {
  const out: ReadelfNote[] = [];
  let container = "";
  for (const line of tool("readelf", ["-nW", file]).split("\n")) {
    const head =
      /^Displaying notes found (?:in|at file offset 0x[0-9a-f]+ with length 0x[0-9a-f]+):?\s*(.*)$/.exec(
        line,
      );
    if (head) {
      container = head[1]!.trim();
      continue;
    }
    const m = /^\s{2}(\S+)\s+0x([0-9a-f]{8})\t(.*)$/.exec(line);
    if (m) {
      const note: ReadelfNote = {
        container,
        owner: m[1]!,
        descsz: Number.parseInt(m[2]!, 16),
        description: m[3]!,
      };
      const id = /Build ID: ([0-9a-f]+)/.exec(line);
      if (id) note.buildId = id[1]!;
      out.push(note);
    }
  }
  return out;
}

/** One row of `readelf -lW`. */
export interface ReadelfSegment {
  type: string;
  offset: number;
  vaddr: bigint;
  paddr: bigint;
  filesz: number;
  memsz: bigint;
  flags: string;
  align: bigint;
}

/** `readelf -lW` program headers. */
export function readelfSegments(file: string): ReadelfSegment[] {
  const out: ReadelfSegment[] = [];
  const re =
    /^\s{2}(\S+)\s+0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) 0x([0-9a-f]+) (.{3}) 0x([0-9a-f]+)$/;
  for (const line of tool("readelf", ["-lW", file]).split("\n")) {
    const m = re.exec(line);
    if (!m) continue;
    out.push({
      type: m[1]!,
      offset: Number.parseInt(m[2]!, 16),
      vaddr: BigInt(`0x${m[3]}`),
      paddr: BigInt(`0x${m[4]}`),
      filesz: Number.parseInt(m[5]!, 16),
      memsz: BigInt(`0x${m[6]}`),
      flags: m[7]!.trim(),
      align: BigInt(`0x${m[8]}`),
    });
  }
  return out;
}

/** `nm -P --defined-only`: name → value for every defined symbol nm lists. */
export function nmDefined(
  file: string,
  dynamic = false,
): Array<{ name: string; value: bigint; kind: string }> {
  const args = ["-P", "--defined-only", ...(dynamic ? ["-D"] : []), file];
  return tool("nm", args)
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => {
      const [name, kind, value] = l.split(" ");
      return { name: name!, kind: kind!, value: BigInt(`0x${value || "0"}`) };
    });
}

/** `readelf -dW`: the library soname, or undefined when there is none (or no dynamic section). */
export function readelfSoname(file: string): string | undefined {
  const out = tool("readelf", ["-dW", file]);
  if (/There is no dynamic section/.test(out)) return undefined;
  if (!/Dynamic section at offset/.test(out)) throw new Error(`readelf -dW ${file}: unexpected output`);
  return /\(SONAME\)\s+Library soname: \[(.*)\]$/m.exec(out)?.[1];
}
