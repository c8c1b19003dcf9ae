/** Library entry of xsplice: re-exports only. */

export * from "./build/index.ts";
export * from "./core/index.ts";
export * from "./elf/index.ts";
export * from "./errors.ts";
export * from "./payload/index.ts";
