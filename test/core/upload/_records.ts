/** Registry records for tests that exercise the registry without a real payload. */
import type { PayloadRecord } from "../../../src/core/registry/records.ts";

/** A CHECKED record named `name` with no regions and no functions. */
export function fakeRecord(name: string): PayloadRecord {
  return {
    name,
    state: "CHECKED",
    rc: 0,
    format: "xsplice",
    buildId: name.padEnd(8, "0").slice(0, 8),
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
  };
}
