/**
 * Branded indices (Rust `object`'s `SectionIndex`/`SymbolIndex` newtypes): a
 * section index and a symbol index are both plain numbers at run time, but the
 * compiler refuses to pass one where the other is expected.
 */

/** Index into the section header table. */
export type SectionIndex = number & { readonly __kind: "section" };

/** Index into one symbol table (which one is said by whoever hands it out). */
export type SymbolIndex = number & { readonly __kind: "symbol" };

/** Brand a number as a section index (no check: callers check ranges where they read). */
export function sectionIndex(n: number): SectionIndex {
  return n as SectionIndex;
}

/** Brand a number as a symbol index. */
export function symbolIndex(n: number): SymbolIndex {
  return n as SymbolIndex;
}
