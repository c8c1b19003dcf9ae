/**
 * Every SPEC §2 structural rejection that needs no process, as a table of
 * targeted mutations of valid payloads built from C (or of bad fixtures built
 * from C), each with the errno it must give and a message that names the place.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { readElf, type Section } from "../../src/elf/index.ts";
import { XspliceError } from "../../src/errors.ts";
import { type ReadPayloadOptions, readPayload } from "../../src/payload/read.ts";
import { fixturePayloadBytes } from "../helpers/payload-fixtures.ts";

const basic = fixturePayloadBytes({ source: "payload/xsplice-basic.c" });
const livepatch = fixturePayloadBytes({ source: "payload/livepatch-v2.c", format: "livepatch" });

/** A copy of a payload with helpers that find what to patch through the ELF reader. */
class Mut {
  readonly b: Uint8Array;
  readonly dv: DataView;
  readonly sections: Section[];
  constructor(src: Uint8Array) {
    this.b = src.slice();
    this.dv = new DataView(this.b.buffer);
    this.sections = readElf(src).sections;
  }
  sec(name: string): Section {
    const s = this.sections.find((x) => x.name === name);
    assert.ok(s, `fixture has ${name}`);
    return s;
  }
  /** Patch a section header field: name 0, type 4, flags 8, offset 24, size 32, link 40, info 44, align 48. */
  shdr(name: string, field: number, value: number | bigint, width: 4 | 8 = 8): this {
    const at = this.sec(name).headerOffset + field;
    if (width === 4) this.dv.setUint32(at, Number(value), true);
    else this.dv.setBigUint64(at, BigInt(value), true);
    return this;
  }
  /** Patch bytes inside a section's data. */
  data(name: string, offset: number, value: number | bigint, width: 1 | 2 | 4 | 8): this {
    const at = this.sec(name).offset + offset;
    if (width === 1) this.dv.setUint8(at, Number(value));
    else if (width === 2) this.dv.setUint16(at, Number(value), true);
    else if (width === 4) this.dv.setUint32(at, Number(value), true);
    else this.dv.setBigUint64(at, BigInt(value), true);
    return this;
  }
  /** Index of the RELA entry in `rela` that patches `offset` of its target. */
  relaAt(rela: string, offset: number): number {
    const s = this.sec(rela);
    for (let i = 0; i * 24 < s.size; i++) {
      if (this.dv.getBigUint64(s.offset + i * 24, true) === BigInt(offset)) return i;
    }
    assert.fail(`${rela} has no relocation at ${offset}`);
  }
  /** Patch a RELA entry field: offset 0, info 8 (type low 32 bits), addend 16. */
  rela(rela: string, index: number, field: 0 | 8 | 16, value: number | bigint, width: 4 | 8 = 8): this {
    return this.data(rela, index * 24 + field, value, width);
  }
  /** Patch the file header. */
  ehdr(offset: number, value: number | bigint, width: 1 | 2 | 4 | 8): this {
    if (width === 1) this.dv.setUint8(offset, Number(value));
    else if (width === 2) this.dv.setUint16(offset, Number(value), true);
    else if (width === 4) this.dv.setUint32(offset, Number(value), true);
    else this.dv.setBigUint64(offset, BigInt(value), true);
    return this;
  }
  /** Make the payload arm64: e_machine and every pointer relocation type of the payload's own tables. */
  arm64(): this {
    this.ehdr(0x12, 183, 2);
    for (const s of this.sections) {
      if (!/^\.rela\.(xsplice|livepatch)\./.test(s.name)) continue;
      for (let i = 0; i * 24 < s.size; i++) this.rela(s.name, i, 8, 257, 4); // R_AARCH64_ABS64
    }
    return this;
  }
}

function expectError(bytes: Uint8Array, errno: string, message: RegExp, opts?: ReadPayloadOptions): void {
  assert.throws(
    () => readPayload(bytes, opts),
    (err: unknown) => {
      assert.ok(err instanceof XspliceError, `an XspliceError, got ${String(err)}`);
      assert.equal(err.errno, errno, `errno for: ${err.message}`);
      assert.match(err.message, message);
      return true;
    },
  );
}

const FUNCS = ".xsplice.funcs";
const RELA_FUNCS = ".rela.xsplice.funcs";
const E = (i: number, field: number) => i * 64 + field; // native entry field
const L = (i: number, field: number) => i * 104 + field; // livepatch entry field

interface Row {
  what: string;
  make: () => Uint8Array;
  errno: "EINVAL" | "EOPNOTSUPP";
  message: RegExp;
  opts?: ReadPayloadOptions;
}

const rows: Row[] = [
  // size
  { what: "empty file", make: () => new Uint8Array(0), errno: "EINVAL", message: /empty/ },
  {
    what: "file above the size limit",
    make: () => basic,
    errno: "EINVAL",
    message: /more than the limit of 4096/,
    opts: { maxSize: 4096 },
  },
  // ELF header
  { what: "short file", make: () => basic.slice(0, 40), errno: "EINVAL", message: /./ },
  { what: "bad magic", make: () => new Mut(basic).ehdr(1, 0x46, 1).b, errno: "EINVAL", message: /magic/ },
  { what: "ELFCLASS32", make: () => new Mut(basic).ehdr(4, 1, 1).b, errno: "EOPNOTSUPP", message: /CLASS/ },
  { what: "big-endian", make: () => new Mut(basic).ehdr(5, 2, 1).b, errno: "EOPNOTSUPP", message: /DATA/ },
  {
    what: "e_ident version 0",
    make: () => new Mut(basic).ehdr(6, 0, 1).b,
    errno: "EOPNOTSUPP",
    message: /version/i,
  },
  {
    what: "e_version 2",
    make: () => new Mut(basic).ehdr(0x14, 2, 4).b,
    errno: "EOPNOTSUPP",
    message: /version/i,
  },
  { what: "ET_EXEC", make: () => new Mut(basic).ehdr(0x10, 2, 2).b, errno: "EOPNOTSUPP", message: /ET_REL/ },
  { what: "ET_DYN", make: () => new Mut(basic).ehdr(0x10, 3, 2).b, errno: "EOPNOTSUPP", message: /ET_REL/ },
  {
    what: "machine i386",
    make: () => new Mut(basic).ehdr(0x12, 3, 2).b,
    errno: "EOPNOTSUPP",
    message: /e_machine 3/,
  },
  {
    what: "OS/ABI FreeBSD",
    make: () => new Mut(basic).ehdr(7, 9, 1).b,
    errno: "EOPNOTSUPP",
    message: /OS\/ABI 9/,
  },
  {
    what: "program headers present",
    make: () => new Mut(basic).ehdr(0x38, 1, 2).b,
    errno: "EOPNOTSUPP",
    message: /program headers/,
  },
  {
    what: "more sections than the limit",
    make: () => basic,
    errno: "EOPNOTSUPP",
    message: /more than the limit of 16/,
    opts: { maxSections: 16 },
  },
  {
    what: "extended section numbering",
    make: () => new Mut(basic).ehdr(0x3c, 0, 2).b,
    errno: "EOPNOTSUPP",
    message: /extended/,
  },
  {
    what: "e_shstrndx 0",
    make: () => new Mut(basic).ehdr(0x3e, 0, 2).b,
    errno: "EINVAL",
    message: /shstrndx/,
  },
  {
    what: "e_shstrndx out of range",
    make: () => new Mut(basic).ehdr(0x3e, 999, 2).b,
    errno: "EINVAL",
    message: /shstrndx/,
  },
  {
    what: "section table outside the file",
    make: () => new Mut(basic).ehdr(0x28, 0xfffff0, 8).b,
    errno: "EINVAL",
    message: /outside the file/,
  },
  {
    what: "section header entries smaller than 64 bytes",
    make: () => new Mut(basic).ehdr(0x3a, 40, 2).b,
    errno: "EINVAL",
    message: /e_shentsize/,
  },
  // sections
  {
    what: "section data outside the file",
    make: () => new Mut(basic).shdr(".text.fixed_parse", 24, 0x7fffff00).b,
    errno: "EINVAL",
    message: /outside the file/,
  },
  {
    what: "alignment not a power of two",
    make: () => new Mut(basic).shdr(".text.fixed_parse", 48, 24).b,
    errno: "EOPNOTSUPP",
    message: /\.text\.fixed_parse alignment 24/,
  },
  {
    what: "writable and executable section",
    make: () => new Mut(basic).shdr(".text.fixed_parse", 8, 7).b,
    errno: "EOPNOTSUPP",
    message: /\.text\.fixed_parse is both writable and executable/,
  },
  {
    what: "writable and executable section (built from C)",
    make: () => fixturePayloadBytes({ source: "payload/bad-wx.c" }),
    errno: "EOPNOTSUPP",
    message: /\.text\.selfmod is both writable and executable/,
  },
  {
    what: "no symbol table",
    make: () => new Mut(basic).shdr(".symtab", 4, 1, 4).b,
    errno: "EINVAL",
    message: /no symbol table/,
  },
  {
    what: "two symbol tables",
    make: () => new Mut(basic).shdr(".comment", 4, 2, 4).b,
    errno: "EINVAL",
    message: /two symbol tables/,
  },
  {
    what: "SHT_REL section",
    make: () => new Mut(basic).shdr(RELA_FUNCS, 4, 9, 4).b,
    errno: "EOPNOTSUPP",
    message: /\.rela\.xsplice\.funcs is SHT_REL/,
  },
  {
    what: "SHF_TLS flag",
    make: () => new Mut(basic).shdr(".bss", 8, 0x403).b,
    errno: "EOPNOTSUPP",
    message: /\.bss holds thread-local/,
  },
  {
    what: ".tdata built from C",
    make: () => fixturePayloadBytes({ source: "payload/bad-tls.c" }),
    errno: "EOPNOTSUPP",
    message: /\.tdata holds thread-local/,
  },
  {
    what: "COMMON symbol built from C (-fcommon)",
    make: () => fixturePayloadBytes({ source: "payload/bad-common.c", cflags: ["-fcommon"] }),
    errno: "EINVAL",
    message: /COMMON symbol shared_counter/,
  },
  {
    what: "relocation section linked to a non-symbol-table",
    make: () => {
      const m = new Mut(basic);
      return m.shdr(RELA_FUNCS, 40, m.sec(".strtab").index, 4).b;
    },
    errno: "EINVAL",
    message: /sh_link|symbol table/,
  },
  {
    what: "string table not NUL-terminated",
    make: () => {
      const m = new Mut(basic);
      return m.data(".strtab", m.sec(".strtab").size - 1, 0x41, 1).b;
    },
    errno: "EINVAL",
    message: /NUL|strtab/,
  },
  // notes
  {
    what: "missing .xsplice.target",
    make: () => fixturePayloadBytes({ source: "payload/xsplice-basic.c", target: null, depends: FIXTURE_ID }),
    errno: "EINVAL",
    message: /missing \.xsplice\.target/,
  },
  {
    what: "missing .xsplice.depends",
    make: () => fixturePayloadBytes({ source: "payload/xsplice-basic.c", depends: null }),
    errno: "EINVAL",
    message: /missing \.xsplice\.depends/,
  },
  {
    what: "missing .note.gnu.build-id",
    make: () => fixturePayloadBytes({ source: "payload/xsplice-basic.c", buildId: false }),
    errno: "EINVAL",
    message: /missing \.note\.gnu\.build-id/,
  },
  {
    what: "empty .xsplice.target",
    make: () => new Mut(basic).shdr(".xsplice.target", 32, 0).b,
    errno: "EINVAL",
    message: /empty \.xsplice\.target/,
  },
  {
    what: "target note of the wrong type",
    make: () => new Mut(basic).data(".xsplice.target", 8, 4, 4).b,
    errno: "EINVAL",
    message: /\.xsplice\.target note is "GNU" type 4/,
  },
  {
    what: "depends note owner not GNU",
    make: () => new Mut(basic).data(".xsplice.depends", 12, 0x58, 1).b,
    errno: "EINVAL",
    message: /\.xsplice\.depends note is "XNU"/,
  },
  {
    what: "build-id note with an empty descriptor",
    make: () => {
      const m = new Mut(basic);
      // descsz 0 and the section cut to the note header + name.
      return m.data(".xsplice.target", 4, 0, 4).shdr(".xsplice.target", 32, 16).b;
    },
    errno: "EINVAL",
    message: /\.xsplice\.target build-id is 0 bytes/,
  },
  {
    what: "note descriptor running past its section",
    make: () => new Mut(basic).data(".xsplice.depends", 4, 0x1000, 4).b,
    errno: "EINVAL",
    message: /\.xsplice\.depends/,
  },
  {
    what: "two notes in .xsplice.target",
    // 36 bytes: a note with a 4-byte id, then a second 16-byte note (no name, 4-byte id).
    make: () =>
      new Mut(basic)
        .data(".xsplice.target", 4, 4, 4)
        .data(".xsplice.target", 20, 0, 4)
        .data(".xsplice.target", 24, 4, 4)
        .data(".xsplice.target", 28, 3, 4).b,
    errno: "EINVAL",
    message: /\.xsplice\.target holds 2 notes, expected one build-id/,
  },
  // functions
  {
    what: "funcs size not a multiple of 64",
    make: () => new Mut(basic).shdr(FUNCS, 32, 3 * 64 - 8).b,
    errno: "EINVAL",
    message: /\.xsplice\.funcs size 184 is not a multiple of the 64-byte entry/,
  },
  {
    what: "old_size 0",
    make: () => new Mut(basic).data(FUNCS, E(1, 24), 0, 8).b,
    errno: "EINVAL",
    message: /entry 1 .*sum\.c#sum_values\): old_size is 0/,
  },
  {
    what: "x86-64 replacement with old_size 4 (< 5-byte jump)",
    make: () => new Mut(basic).data(FUNCS, E(0, 24), 4, 8).b,
    errno: "EINVAL",
    message: /entry 0 .*parse_header\): old_size 4 is smaller than a 5-byte jump/,
  },
  {
    what: "arm64 replacement with old_size 3 (< 4-byte branch)",
    make: () => new Mut(basic).arm64().data(FUNCS, E(0, 24), 3, 8).b,
    errno: "EINVAL",
    message: /old_size 3 is smaller than a 4-byte jump/,
  },
  {
    what: "NOP entry longer than 31 bytes",
    make: () => new Mut(basic).data(FUNCS, E(2, 24), 64, 8).data(FUNCS, E(2, 8), 32, 8).b,
    errno: "EOPNOTSUPP",
    message: /entry 2 .*debug_trap\): NOP of 32 bytes, more than 31/,
  },
  {
    what: "NOP entry longer than old_size",
    make: () => new Mut(basic).data(FUNCS, E(2, 8), 25, 8).b,
    errno: "EINVAL",
    message: /NOP of 25 bytes exceeds old_size 24/,
  },
  {
    what: "NOP entry of 0 bytes",
    make: () => new Mut(basic).data(FUNCS, E(2, 8), 0, 8).b,
    errno: "EINVAL",
    message: /NOP entry with new_size 0/,
  },
  {
    what: "same old function twice (by name)",
    make: () => {
      const m = new Mut(basic);
      // Point entry 1's name at entry 0's string.
      const r0 = m.relaAt(RELA_FUNCS, E(0, 32));
      const addend0 = m.dv.getBigInt64(m.sec(RELA_FUNCS).offset + r0 * 24 + 16, true);
      return m.rela(RELA_FUNCS, m.relaAt(RELA_FUNCS, E(1, 32)), 16, addend0).b;
    },
    errno: "EINVAL",
    message: /entry 1 .*parse_header\): same old function as entry 0/,
  },
  {
    what: "same old function twice (by old_addr)",
    make: () => new Mut(basic).data(FUNCS, E(2, 16), 0x401136, 8).b,
    errno: "EINVAL",
    message: /entry 2 .*same old function as entry 1/,
  },
  {
    what: "new_addr set without a relocation",
    make: () => new Mut(basic).data(FUNCS, E(2, 0), 0x401000, 8).b,
    errno: "EINVAL",
    message: /entry 2 .*new_addr is 0x401000 without a relocation/,
  },
  {
    what: "pad not zero",
    make: () => new Mut(basic).data(FUNCS, E(0, 40 + 5), 1, 1).b,
    errno: "EINVAL",
    message: /entry 0 .*pad byte 5 is not zero/,
  },
  {
    what: "relocation at old_addr",
    make: () => {
      const m = new Mut(basic);
      return m.rela(RELA_FUNCS, m.relaAt(RELA_FUNCS, E(1, 32)), 0, E(1, 16)).b;
    },
    errno: "EINVAL",
    message: /entry 1: unexpected relocation at field offset 16/,
  },
  {
    what: "name relocation of a PC-relative type",
    make: () => {
      const m = new Mut(basic);
      return m.rela(RELA_FUNCS, m.relaAt(RELA_FUNCS, E(0, 32)), 8, 2, 4).b;
    },
    errno: "EINVAL",
    message: /\.rela\.xsplice\.funcs relocation \d+ at 0x20 is type 2/,
  },
  {
    what: "name pointing past its string section",
    make: () => {
      const m = new Mut(basic);
      return m.rela(RELA_FUNCS, m.relaAt(RELA_FUNCS, E(0, 32)), 16, m.sec(".rodata.str1.1").size).b;
    },
    errno: "EINVAL",
    message: /entry 0 .*name points to 0x4a, outside \.rodata\.str1\.1/,
  },
  {
    what: "name not NUL-terminated",
    make: () => {
      const m = new Mut(basic);
      const s = m.sec(".rodata.str1.1");
      return m
        .data(".rodata.str1.1", s.size - 1, 0x41, 1)
        .rela(RELA_FUNCS, m.relaAt(RELA_FUNCS, E(0, 32)), 16, s.size - 1).b;
    },
    errno: "EINVAL",
    message: /not NUL-terminated/,
  },
  {
    what: "neither name nor old_addr",
    make: () => {
      const m = new Mut(basic);
      // Swap entry 0's name relocation with the last one, then cut the section before it.
      const rs = m.sec(RELA_FUNCS);
      const i0 = m.relaAt(RELA_FUNCS, E(0, 32));
      const last = rs.size / 24 - 1;
      const a = m.b.slice(rs.offset + i0 * 24, rs.offset + i0 * 24 + 24);
      const z = m.b.slice(rs.offset + last * 24, rs.offset + last * 24 + 24);
      m.b.set(z, rs.offset + i0 * 24);
      m.b.set(a, rs.offset + last * 24);
      return m.shdr(RELA_FUNCS, 32, rs.size - 24).b;
    },
    errno: "EINVAL",
    message: /entry 0 .*neither old_addr nor name/,
  },
  {
    what: "no funcs and no hooks",
    make: () => {
      const m = new Mut(basic);
      // sh_name + 1 drops the leading dot, so none of these names match any more.
      for (const s of m.sections) {
        if (s.name === FUNCS || s.name.startsWith(".xsplice.hooks."))
          m.shdr(s.name, 0, m.dv.getUint32(s.headerOffset, true) + 1, 4);
      }
      return m.b;
    },
    errno: "EINVAL",
    message: /no \.xsplice\.funcs entries and no hooks/,
  },
  {
    what: "two .xsplice.funcs sections",
    make: () => {
      const m = new Mut(basic);
      return m.shdr(".xsplice.symbols", 0, m.dv.getUint32(m.sec(FUNCS).headerOffset, true), 4).b;
    },
    errno: "EINVAL",
    message: /two \.xsplice\.funcs sections/,
  },
  // livepatch
  {
    what: "livepatch version 1",
    make: () => new Mut(livepatch).data(".livepatch.funcs", L(1, 32), 1, 1).b,
    errno: "EOPNOTSUPP",
    message: /\.livepatch\.funcs entry 1 .*version 1, only 2/,
  },
  {
    what: "livepatch expectation reserved bits",
    make: () => new Mut(livepatch).data(".livepatch.funcs", L(0, 72), 0x40 | 11, 1).b,
    errno: "EINVAL",
    message: /entry 0 .*expectation reserved bits set \(0x4b\)/,
  },
  {
    what: "livepatch expectation enabled with length 0",
    make: () => new Mut(livepatch).data(".livepatch.funcs", L(1, 72), 1, 1).b,
    errno: "EINVAL",
    message: /entry 1 .*expectation enabled with length 0/,
  },
  {
    what: "livepatch expectation longer than old_size",
    make: () => new Mut(livepatch).data(".livepatch.funcs", L(2, 72), 1 | (13 << 1), 1).b,
    errno: "EINVAL",
    message: /entry 2 .*13 expected bytes exceed old_size 12/,
  },
  {
    what: "livepatch opaque bytes not zero",
    make: () => new Mut(livepatch).data(".livepatch.funcs", L(0, 40), 7, 1).b,
    errno: "EINVAL",
    message: /entry 0 .*byte 40 .* not zero/,
  },
  {
    what: "livepatch old_size 0",
    make: () => new Mut(livepatch).data(".livepatch.funcs", L(0, 28), 0, 4).b,
    errno: "EINVAL",
    message: /check_limit\): old_size is 0/,
  },
  {
    what: "livepatch NOP longer than old_size",
    make: () => new Mut(livepatch).data(".livepatch.funcs", L(2, 24), 13, 4).b,
    errno: "EINVAL",
    message: /trace_point\): NOP of 13 bytes exceeds old_size 12/,
  },
  {
    what: "livepatch funcs size not a multiple of 104",
    make: () => new Mut(livepatch).shdr(".livepatch.funcs", 32, 3 * 104 - 4).b,
    errno: "EINVAL",
    message: /not a multiple of the 104-byte entry/,
  },
  {
    what: "livepatch payload without .livepatch.xen_depends",
    make: () =>
      fixturePayloadBytes({
        source: "payload/livepatch-v2.c",
        format: "livepatch",
        target: null,
        depends: FIXTURE_ID,
      }),
    errno: "EINVAL",
    message: /missing \.livepatch\.xen_depends/,
  },
  // hooks, target symbols, metadata
  {
    what: "load hook array not a multiple of 8",
    make: () => new Mut(basic).shdr(".xsplice.hooks.load", 32, 12).b,
    errno: "EINVAL",
    message: /\.xsplice\.hooks\.load size 12 is not a multiple of 8/,
  },
  {
    what: "single hook of 16 bytes",
    make: () => new Mut(basic).shdr(".xsplice.hooks.preapply", 32, 16).b,
    errno: "EINVAL",
    message: /\.xsplice\.hooks\.preapply size 16 is not one 8-byte pointer/,
  },
  {
    what: "NULL hook (no relocation)",
    make: () => {
      const m = new Mut(basic);
      // An empty relocation section: the preapply slot is left without a relocation.
      return m.shdr(".rela.xsplice.hooks.preapply", 32, 0).b;
    },
    errno: "EINVAL",
    message: /\.xsplice\.hooks\.preapply hook 0 has no relocation/,
  },
  {
    what: "two .xsplice.hooks.load sections",
    make: () => {
      const m = new Mut(basic);
      return m.shdr(
        ".xsplice.hooks.unload",
        0,
        m.dv.getUint32(m.sec(".xsplice.hooks.load").headerOffset, true),
        4,
      ).b;
    },
    errno: "EINVAL",
    message: /two \.xsplice\.hooks\.load sections/,
  },
  {
    what: ".xsplice.symbols size not a multiple of 16",
    make: () => new Mut(basic).shdr(".xsplice.symbols", 32, 24).b,
    errno: "EINVAL",
    message: /\.xsplice\.symbols size 24 is not a multiple of 16/,
  },
  {
    what: ".xsplice.symbols of type SHT_NULL (a size but no bytes)",
    make: () => new Mut(basic).shdr(".xsplice.symbols", 4, 0, 4).b,
    errno: "EINVAL",
    message: /section \.xsplice\.symbols \(type 0\) has no file data/,
  },
  {
    what: ".xsplice.funcs of type SHT_NOBITS",
    make: () => new Mut(basic).shdr(FUNCS, 4, 8, 4).b,
    errno: "EINVAL",
    message: /section \.xsplice\.funcs \(type 8\) has no file data/,
  },
  {
    what: ".modinfo not NUL-terminated",
    make: () => {
      const m = new Mut(basic);
      return m.shdr(".modinfo", 32, m.sec(".modinfo").size - 1).b;
    },
    errno: "EINVAL",
    message: /\.modinfo is not NUL-terminated/,
  },
];

const FIXTURE_ID = Uint8Array.from({ length: 20 }, (_, i) => i + 1);

describe("readPayload refuses each SPEC §2 fault with its errno", () => {
  test("the unmutated fixtures are accepted (the baseline of every row)", () => {
    assert.equal(readPayload(basic).funcs.length, 3);
    assert.equal(readPayload(livepatch).funcs.length, 3);
    // OS/ABI GNU (3) is accepted like System V.
    assert.equal(readPayload(new Mut(basic).ehdr(7, 3, 1).b).format, "xsplice");
    // The arm64 rewrite alone is accepted: only the short old_size row fails.
    assert.equal(readPayload(new Mut(basic).arm64().data(FUNCS, E(0, 24), 4, 8).b).machine, 183);
  });

  for (const row of rows) {
    test(`${row.what} → ${row.errno}`, () => expectError(row.make(), row.errno, row.message, row.opts));
  }
});
