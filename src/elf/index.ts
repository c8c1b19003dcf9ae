/** The ELF toolkit: constants, a zero-copy bounds-checked ELF64 reader, and a relocatable-object writer. */
export * from "./defs.ts";
export * from "./dynamic.ts";
export * from "./file.ts";
export * from "./head.ts";
export * from "./header.ts";
export * from "./indices.ts";
export * from "./note.ts";
export * from "./relocation.ts";
export * from "./section.ts";
export * from "./segment.ts";
export * from "./string-table.ts";
export * from "./symbol.ts";
export * from "./writer.ts";
