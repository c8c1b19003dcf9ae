/** `xsplice build` as a library: hand-written C payloads → payload files (SPEC §11). */

export type { TargetSymbol } from "./_generated.ts";
export * from "./build.ts";
export * from "./target-symbols.ts";
