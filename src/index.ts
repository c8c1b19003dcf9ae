/** Library entry of xsplice: re-exports only. */

export * from "./build/index.ts";
export {
  type ActionResult,
  type ExecuteOptions,
  executeAction,
  type PerformOptions,
  performAction,
  runAction,
  type StackPolicy,
} from "./core/execute.ts";
export * from "./core/index.ts";
export { type RecoveryOptions, type RecoveryReport, recover } from "./core/recovery.ts";
export {
  compileUnitProducers,
  LIVE_PATCHING_FLAG,
  livePatchingWarning,
  type ProducerScan,
} from "./elf/dwarf-producer.ts";
export * from "./elf/index.ts";
export * from "./errors.ts";
export * from "./payload/index.ts";
