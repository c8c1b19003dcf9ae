/** The xsplice core (re-exports only): the SPEC §5 API, the loader, sessions, the registry in the target. */
export * from "./actions.ts";
export * from "./api.ts";
export * from "./loader.ts";
export type { PayloadRecord, RegistryState, State } from "./registry/records.ts";
export * from "./registry/remote.ts";
export * from "./session.ts";
