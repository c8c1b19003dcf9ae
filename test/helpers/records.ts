/**
 * Registry records for tests that need a `PayloadRecord` without loading a
 * payload: the executor tests (hand-made records redirecting functions the
 * target already holds), the registry-in-the-target tests and the pure
 * action-planning tests all start from this one shape.
 */
import type { PayloadRecord } from "../../src/core/registry/records.ts";

/**
 * A CHECKED `xsplice` record named `name` (build-id `${name}-id`) with no
 * regions, functions, exports or hooks; `over` replaces any field.
 */
export function payloadRecord(name: string, over: Partial<PayloadRecord> = {}): PayloadRecord {
  return {
    name,
    state: "CHECKED",
    rc: 0,
    format: "xsplice",
    buildId: `${name}-id`,
    target: "00",
    depends: "00",
    object: { path: "/x", buildId: "00", bias: "0x0" },
    regions: [],
    exports: {},
    funcs: [],
    hooks: { load: [], unload: [] },
    metadata: {},
    hasOwnWritableData: false,
    reverted: false,
    appliedSeq: 0,
    payloadStruct: "",
    ...over,
  };
}
