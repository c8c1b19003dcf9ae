import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { compileC } from "../../test/helpers/cc.ts";
import { XspliceError } from "../errors.ts";
import { type CfiRow, EhFrame, type RegisterRule, X86_64_DWARF_REGS } from "./eh-frame.ts";
import { readElf } from "./file.ts";

// readelf names the return-address column "ra".
const REG_NAMES: string[] = X86_64_DWARF_REGS.map((r) => (r === "rip" ? "ra" : r));

function ehFrameOf(path: string, withHdr = true): EhFrame {
  const elf = readElf(readFileSync(path));
  const eh = elf.sectionByName(".eh_frame")!;
  const hdr = elf.sectionByName(".eh_frame_hdr");
  return new EhFrame({
    ehFrame: eh.data(),
    ehFrameAddr: eh.addr,
    ...(withHdr && hdr ? { ehFrameHdr: hdr.data(), ehFrameHdrAddr: hdr.addr } : {}),
  });
}

/** One FDE as `readelf --debug-dump=frames-interp` prints it. */
interface OracleFde {
  offset: number;
  begin: bigint;
  end: bigint;
  columns: string[];
  rows: { loc: bigint; cells: string[] }[];
}

/** Parse readelf's interpreted frame tables; an FDE without rows takes its CIE's table, as readelf omits it. */
function readelfFrames(path: string): OracleFde[] {
  // readelf exits 1 on libc over an unrelated DWARF warning; its frame tables are complete.
  const text = spawnSync("readelf", ["--debug-dump=frames-interp", path], {
    encoding: "utf8",
    maxBuffer: 1 << 27,
  }).stdout;
  const cies = new Map<number, { columns: string[]; rows: { loc: bigint; cells: string[] }[] }>();
  const out: OracleFde[] = [];
  let current: { columns: string[]; rows: { loc: bigint; cells: string[] }[] } | undefined;
  for (const line of text.split("\n")) {
    const cie = /^([0-9a-f]{8}) [0-9a-f]+ [0-9a-f]{8} CIE/.exec(line);
    const fde =
      /^([0-9a-f]{8}) [0-9a-f]+ [0-9a-f]{8} FDE cie=([0-9a-f]{8}) pc=([0-9a-f]+)\.\.([0-9a-f]+)/.exec(line);
    if (cie) {
      current = { columns: [], rows: [] };
      cies.set(Number.parseInt(cie[1]!, 16), current);
    } else if (fde) {
      const f: OracleFde = {
        offset: Number.parseInt(fde[1]!, 16),
        begin: BigInt(`0x${fde[3]}`),
        end: BigInt(`0x${fde[4]}`),
        columns: [],
        rows: [],
      };
      const parent = cies.get(Number.parseInt(fde[2]!, 16))!;
      // Until rows appear, the FDE's table is its CIE's initial row at pc_begin.
      f.columns = parent.columns;
      f.rows = parent.rows.map((r) => ({ loc: f.begin, cells: r.cells }));
      out.push(f);
      current = f;
    } else if (current && /^ +LOC +CFA/.test(line)) {
      current.columns = line.trim().split(/\s+/).slice(2);
      current.rows = [];
    } else if (current && /^[0-9a-f]{16} /.test(line)) {
      const cells = line
        .replace(/r(\d+) \((\w+)\)/g, "reg:$2")
        .trim()
        .split(/\s+/);
      current.rows.push({ loc: BigInt(`0x${cells[0]}`), cells: cells.slice(1) });
    }
  }
  return out;
}

function show(rule: RegisterRule | undefined): string {
  if (!rule) return "u";
  switch (rule.kind) {
    case "undefined":
      return "u";
    case "same":
      return "s";
    case "offset":
      return `c${rule.offset >= 0n ? "+" : ""}${rule.offset}`;
    case "val_offset":
      return `v${rule.offset >= 0n ? "+" : ""}${rule.offset}`;
    case "register":
      return `reg:${REG_NAMES[rule.register] ?? rule.register}`;
    case "expression":
      return "exp";
    case "val_expression":
      return "vexp";
  }
}

function cells(row: CfiRow, columns: string[]): string[] {
  const cfa =
    row.cfa.kind === "register"
      ? `${REG_NAMES[row.cfa.register]}${row.cfa.offset >= 0n ? "+" : ""}${row.cfa.offset}`
      : row.cfa.kind === "expression"
        ? "exp"
        : `?${row.cfa.reason}`;
  return [cfa, ...columns.map((c) => show(row.registers.get(REG_NAMES.indexOf(c))))];
}

function compareWithReadelf(path: string) {
  const eh = ehFrameOf(path);
  const oracle = readelfFrames(path);
  const fdes = eh.fdes();
  assert.equal(fdes.length, oracle.length, "FDE count");
  let rows = 0;
  for (const [i, o] of oracle.entries()) {
    const f = fdes[i]!;
    assert.deepEqual(
      [f.offset, f.pcBegin, f.pcEnd],
      [o.offset, o.begin, o.end],
      `FDE at 0x${o.offset.toString(16)}`,
    );
    for (const r of o.rows) {
      const mine = eh.rowIn(f, r.loc);
      assert.equal(mine.location, r.loc, `row location in FDE 0x${o.offset.toString(16)}`);
      assert.deepEqual(
        cells(mine, o.columns),
        r.cells,
        `FDE 0x${o.offset.toString(16)} at 0x${r.loc.toString(16)}`,
      );
      rows++;
    }
  }
  return { fdes: fdes.length, rows };
}

test("every CFI row of a gcc -O2 executable matches readelf --debug-dump=frames-interp", () => {
  const exe = compileC({
    sources: ["describe/describe-main.c", "describe/describe-other.c", "describe/describe-lib.c"],
    kind: "exe",
    name: "eh-frame-exe",
  });
  const { fdes, rows } = compareWithReadelf(exe);
  assert.ok(fdes >= 8 && rows >= 10, `${fdes} FDEs, ${rows} rows`);
});

test("every CFI row of libc (remember/restore_state, expressions, DW_CFA_register) matches readelf", () => {
  const { fdes, rows } = compareWithReadelf("/lib/x86_64-linux-gnu/libc.so.6");
  assert.ok(fdes > 1000 && rows > 5000, `${fdes} FDEs, ${rows} rows`);
});

test("lookup through .eh_frame_hdr's binary-search table agrees with a scan of every FDE", () => {
  const path = "/lib/x86_64-linux-gnu/libc.so.6";
  const withHdr = ehFrameOf(path, true);
  const without = ehFrameOf(path, false);
  const fdes = without.fdes();
  for (let i = 0; i < fdes.length; i += 7) {
    const f = fdes[i]!;
    for (const pc of [f.pcBegin, f.pcEnd - 1n, f.pcEnd, f.pcBegin - 1n]) {
      assert.equal(withHdr.findFde(pc)?.offset, without.findFde(pc)?.offset, `pc 0x${pc.toString(16)}`);
    }
    assert.equal(withHdr.findFde(f.pcBegin)?.offset, f.offset);
  }
  assert.equal(withHdr.findFde(0n), undefined);
  assert.equal(withHdr.rowAt(0xffffffffn), undefined);
});

/** A hand-made .eh_frame: one CIE "zR" (pcrel|sdata4) and one FDE whose program we choose. */
function synthetic(program: number[], base = 0x1000n): EhFrame {
  const cie = [0, 0, 0, 0, 1, 0x7a, 0x52, 0, 1, 0x78, 16, 1, 0x1b, 0x0c, 7, 8, 0x90, 1];
  while ((cie.length + 4) % 8) cie.push(0);
  const cieBytes = [...u32(cie.length), ...cie];
  const fdeStart = cieBytes.length;
  const body = [...u32(fdeStart + 4), 0, 0, 0, 0, ...u32(0x40), 0, ...program];
  while ((body.length + 4) % 8) body.push(0);
  const bytes = new Uint8Array([...cieBytes, ...u32(body.length), ...body, 0, 0, 0, 0]);
  // pc_begin is pcrel: aim it at 0x2000 from the field at base + fdeStart + 8.
  new DataView(bytes.buffer).setInt32(fdeStart + 8, Number(0x2000n - (base + BigInt(fdeStart) + 8n)), true);
  return new EhFrame({ ehFrame: bytes, ehFrameAddr: base });
}
function u32(v: number): number[] {
  return [v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24];
}

test("remember/restore_state, def_cfa_expression and an unknown opcode in a synthetic FDE", () => {
  const eh = synthetic([
    0x41, // advance_loc 1
    0x0e,
    16, // def_cfa_offset 16
    0x86,
    2, // rbp at cfa-16
    0x41,
    0x0a, // remember_state
    0x0d,
    6, // def_cfa_register rbp
    0x41,
    0x0f,
    2,
    0x77,
    0x08, // def_cfa_expression (2 bytes)
    0x41,
    0x0b, // restore_state: back to rsp+16
    0xc6, // restore rbp: undefined again, as in the CIE
    0x41,
    0x3f, // no such opcode
  ]);
  const [fde] = eh.fdes();
  assert.equal(fde!.pcBegin, 0x2000n);
  assert.equal(fde!.pcEnd, 0x2040n);
  const at = (pc: bigint) => cells(eh.rowAt(pc)!, ["rbp", "ra"]);
  assert.deepEqual(at(0x2000n), ["rsp+8", "u", "c-8"]);
  assert.deepEqual(at(0x2001n), ["rsp+16", "c-16", "c-8"]);
  assert.deepEqual(at(0x2002n), ["rbp+16", "c-16", "c-8"]);
  assert.deepEqual(at(0x2003n), ["exp", "c-16", "c-8"]);
  assert.deepEqual(at(0x2004n), ["rsp+16", "u", "c-8"]);
  assert.equal(eh.rowAt(0x2004n)!.location, 0x2004n);
  assert.match(at(0x2005n)[0]!, /^\?unknown CFA opcode 0x3f/);
  assert.equal(eh.rowAt(0x2040n), undefined);
  assert.equal(eh.rowAt(0x1fffn), undefined);
});

test("a truncated or corrupt .eh_frame gives EINVAL, never a RangeError", () => {
  const libc = readElf(readFileSync("/lib/x86_64-linux-gnu/libc.so.6")).sectionByName(".eh_frame")!;
  const isEinval = (e: unknown) => e instanceof XspliceError && e.errno === "EINVAL";
  for (const len of [3, 10, 20, 40, 101]) {
    assert.throws(
      () => new EhFrame({ ehFrame: libc.data().subarray(0, len), ehFrameAddr: libc.addr }).fdes(),
      isEinval,
    );
  }
  const bad = new Uint8Array(libc.data().subarray(0, 64));
  bad[8] = 9; // CIE version 9
  assert.throws(() => new EhFrame({ ehFrame: bad, ehFrameAddr: 0n }).fdes(), isEinval);
});
