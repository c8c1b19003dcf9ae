/** The payload linker (SPEC §2 layout, symbols, relocations): pure functions over ELF-level inputs. */
export * from "./layout.ts";
export * from "./patch-site.ts";
export * from "./relocate.ts";
export * from "./resolve.ts";
