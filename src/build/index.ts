/** `xsplice build` as a library: hand-written C payloads → payload files (SPEC §11). */
export * from "./build.ts";
export * from "./target-symbols.ts";
