/** Process control (re-exports only): threads, memory, remote calls, mappings, objects, stacks. */
export * from "./free-ranges.ts";
export * from "./maps.ts";
export * from "./memory.ts";
export * from "./objects.ts";
export * from "./remote-call.ts";
export * from "./stack.ts";
export * from "./syscalls.ts";
export * from "./threads.ts";
export * from "./tracer.ts";
