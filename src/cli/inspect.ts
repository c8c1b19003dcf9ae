/**
 * `xsplice inspect FILE [--json]` (SPEC §10): what a payload holds, read and
 * checked without a process. The JSON document is the SPEC §10 shape plus a
 * few extra fields (relocation counts, target symbols, signature details).
 */
import { nameOf, R_AARCH64, R_X86_64, SHF } from "../elf/defs.ts";
import type { ElfFile } from "../elf/index.ts";
import { XspliceError } from "../errors.ts";
import { hexBytes } from "../hex.ts";
import { readPayloadFile } from "../payload/file.ts";
import { readPayload } from "../payload/read.ts";
import { SIG_ALGO } from "../payload/signature.ts";
import { type Payload, SINGLE_HOOKS, type SymbolRef } from "../payload/types.ts";
import type { Command, CommandResult } from "./command.ts";
import { printable } from "./printable.ts";

const ARCH: Record<number, { name: string; relocPrefix: string; relocs: Readonly<Record<string, number>> }> =
  {
    62: { name: "x86_64", relocPrefix: "R_X86_64_", relocs: R_X86_64 },
    183: { name: "aarch64", relocPrefix: "R_AARCH64_", relocs: R_AARCH64 },
  };

function addr(v: bigint): string {
  return `0x${v.toString(16)}`;
}

/**
 * A readable name for a pointer's target. A section symbol plus addend (what
 * gcc emits for statics) is shown as the named symbol at that place when
 * there is one, else as `section+offset`.
 */
function refName(elf: ElfFile, ref: SymbolRef): string {
  const { symbol, addend } = ref;
  const plus = (base: string, off: bigint) =>
    off === 0n ? base : `${base}${off < 0n ? "-" : "+"}${addr(off < 0n ? -off : off)}`;
  if (symbol.name !== "") return printable(plus(symbol.name, addend));
  if (symbol.section.kind !== "section") return plus(`[symbol ${symbol.index}]`, addend);
  const sectionIndex = symbol.section.index;
  const where = symbol.value + addend;
  const named = elf.symbols().find(
    (s) =>
      s.name !== "" &&
      s.type !== 4 && // STT_FILE
      s.section.kind === "section" &&
      s.section.index === sectionIndex &&
      s.value === where,
  );
  if (named !== undefined) return printable(named.name);
  return printable(plus(elf.section(sectionIndex).name, where));
}

/** Number of relocations per type name, across every RELA section. */
function relocationCounts(p: Payload): Record<string, number> {
  const arch = ARCH[p.machine];
  const counts = new Map<string, number>();
  for (const rs of p.elf.relocationSections()) {
    for (const r of rs.relocations) {
      const name = arch ? `${arch.relocPrefix}${nameOf(arch.relocs, r.type)}` : String(r.type);
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
  }
  return Object.fromEntries([...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
}

function algoName(algo: number): string {
  return algo === SIG_ALGO.RSA ? "RSA" : algo === SIG_ALGO.ED25519 ? "Ed25519" : `algorithm ${algo}`;
}

/** The SPEC §10 `inspect` document, with extra fields after the required ones. */
export function inspectJson(p: Payload): Record<string, unknown> {
  const hooks: Record<string, string | string[]> = {
    load: p.hooks.load.map((h) => refName(p.elf, h)),
    unload: p.hooks.unload.map((h) => refName(p.elf, h)),
  };
  for (const k of SINGLE_HOOKS) {
    const h = p.hooks[k];
    if (h !== undefined) hooks[k] = refName(p.elf, h);
  }
  return {
    format: p.format,
    machine: p.machine,
    buildId: hexBytes(p.buildId),
    target: hexBytes(p.target),
    depends: hexBytes(p.depends),
    funcs: p.funcs.map((f) => ({
      name: f.name,
      oldAddr: addr(f.oldAddr),
      oldSize: f.oldSize,
      newSize: f.newSize,
      nop: f.nop,
      ...(f.newSymbol ? { newSymbol: refName(p.elf, f.newSymbol) } : {}),
      ...(f.expect ? { expect: hexBytes(f.expect) } : {}),
    })),
    hooks,
    metadata: p.metadata,
    signed: p.signed,
    ...(p.signature
      ? {
          signature: {
            algo: algoName(p.signature.algo),
            keyId: hexBytes(p.signature.keyId),
            signer: p.signature.signer,
          },
        }
      : {}),
    arch: ARCH[p.machine]?.name ?? String(p.machine),
    targetSymbols: p.targetSymbols.map((s) => ({ name: s.name, addr: addr(s.addr) })),
    hasOwnWritableData: p.hasOwnWritableData,
    relocations: relocationCounts(p),
  };
}

/** The text a person reads. */
export function inspectText(file: string, p: Payload): string {
  const lines: string[] = [];
  const arch = ARCH[p.machine]?.name ?? `machine ${p.machine}`;
  lines.push(`payload:   ${printable(file)}`);
  lines.push(`format:    ${p.format} (${arch})`);
  lines.push(`build-id:  ${hexBytes(p.buildId)}`);
  lines.push(`target:    ${hexBytes(p.target)}`);
  lines.push(`depends:   ${hexBytes(p.depends)}`);
  const sig = p.signature;
  lines.push(
    `signed:    ${sig ? `yes, ${algoName(sig.algo)}, key ${hexBytes(sig.keyId) || "-"}, signer ${JSON.stringify(sig.signer)}` : "no"}`,
  );
  lines.push(`own data:  ${p.hasOwnWritableData ? "yes (cannot be re-applied after a revert)" : "no"}`);
  lines.push(`functions: ${p.funcs.length}`);
  for (const f of p.funcs) {
    const old = f.name !== "" ? printable(f.name) : addr(f.oldAddr);
    const at = f.name !== "" && f.oldAddr !== 0n ? ` @ ${addr(f.oldAddr)}` : "";
    const action = f.nop
      ? `NOP ${f.newSize} bytes`
      : `-> ${f.newSymbol ? refName(p.elf, f.newSymbol) : "?"} (${f.newSize} bytes)`;
    const expect = f.expect ? `, expects ${hexBytes(f.expect)}` : "";
    lines.push(`  [${f.index}] ${old}${at} (${f.oldSize} bytes): ${action}${expect}`);
  }
  const hookLines: string[] = [];
  if (p.hooks.load.length) hookLines.push(`  load: ${p.hooks.load.map((h) => refName(p.elf, h)).join(", ")}`);
  if (p.hooks.unload.length)
    hookLines.push(`  unload: ${p.hooks.unload.map((h) => refName(p.elf, h)).join(", ")}`);
  for (const k of SINGLE_HOOKS) {
    const h = p.hooks[k];
    if (h !== undefined) hookLines.push(`  ${k}: ${refName(p.elf, h)}`);
  }
  lines.push(`hooks:${hookLines.length ? "" : " none"}`, ...hookLines);
  const meta = Object.entries(p.metadata);
  lines.push(`metadata:${meta.length ? "" : " none"}`);
  for (const [k, v] of meta)
    for (const one of v.split("\n")) lines.push(`  ${printable(k)}=${printable(one)}`);
  if (p.targetSymbols.length) {
    lines.push(`target symbols: ${p.targetSymbols.length}`);
    for (const s of p.targetSymbols) lines.push(`  ${addr(s.addr)} ${printable(s.name)}`);
  }
  const relocs = Object.entries(relocationCounts(p));
  lines.push(`relocations: ${relocs.length ? relocs.map(([k, n]) => `${k} ${n}`).join(", ") : "none"}`);
  const sections = p.elf.sections.filter((s) => (s.flags & BigInt(SHF.ALLOC)) !== 0n && s.size > 0).length;
  lines.push(`sections:  ${p.elf.sections.length} (${sections} allocated, non-empty)`);
  return lines.join("\n");
}

/** `xsplice inspect FILE`. */
export const inspectCommand: Command = {
  name: "inspect",
  usage: "inspect FILE",
  summary: "show what a payload holds, without a process",
  options: {},
  positionals: [1, 1],
  describe: (positionals) => `inspect ${positionals[0] ?? ""}`.trimEnd(),
  async run(input): Promise<CommandResult> {
    const file = input.positionals[0] ?? "";
    let payload: Payload;
    try {
      payload = readPayload(readPayloadFile(file));
    } catch (err) {
      if (err instanceof XspliceError) {
        throw new XspliceError(err.errno, printable(err.message), err.where, { cause: err });
      }
      throw err;
    }
    return { json: inspectJson(payload), text: inspectText(file, payload) };
  },
};
