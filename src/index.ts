/** Library entry of xsplice: re-exports only. */
export * from "./errors.ts";
