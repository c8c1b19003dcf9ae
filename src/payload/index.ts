/** xsplice payloads (SPEC §1–2, §9): the format-independent model, its reader, and signatures. */
export * from "./file.ts";
export * from "./read.ts";
export * from "./signature.ts";
export * from "./types.ts";
