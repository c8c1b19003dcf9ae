/**
 * GNU ld as the oracle for the payload linker: link the same relocatable
 * object at the same section addresses, with the same addresses for its
 * undefined symbols, and read the result back.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUILD_DIR, tool } from "../helpers/cc.ts";

/** One output section at a fixed address, taking the input sections of the same name. */
export interface LdPlacement {
  name: string;
  address: bigint;
}

let seq = 0;

/**
 * Link `objects` statically with a linker script that puts each named input
 * section at its address (GOT and TLS sections at the given addresses too) and
 * `--defsym` for every undefined symbol. `--no-relax` keeps GOTPCRELX loads
 * from the GOT, as the linker under test does.
 */
export function ldLink(
  objects: string[],
  placements: LdPlacement[],
  defsyms: Record<string, bigint>,
  extra: { got: bigint; tls: bigint },
): Uint8Array {
  const lines = placements.map((p) => `  ${p.name} 0x${p.address.toString(16)} : { *(${p.name}) }`);
  lines.push(`  .got 0x${extra.got.toString(16)} : { *(.got) *(.got.plt) *(.igot.plt) }`);
  lines.push(
    `  .tdata 0x${extra.tls.toString(16)} : { *(.tdata .tdata.*) }`,
    "  .tbss : { *(.tbss .tbss.*) }",
  );
  const script = join(BUILD_DIR, `ld-${process.pid}-${seq++}.ld`);
  writeFileSync(script, `SECTIONS {\n${lines.join("\n")}\n}\n`);
  const out = `${script}.out`;
  const syms = Object.entries(defsyms).map(([n, v]) => `--defsym=${n}=0x${v.toString(16)}`);
  tool("ld", [
    "-static",
    "-e",
    "0",
    "-z",
    "norelro",
    "-z",
    "noexecstack",
    "--no-relax",
    "--build-id=none",
    "-T",
    script,
    "-o",
    out,
    ...syms,
    ...objects,
  ]);
  return new Uint8Array(readFileSync(out));
}
