/**
 * What xsplice remembers between operations, in one explicit object: a
 * caller that works on many processes or runs for long (the agent, `--all`, a
 * test) creates one context and passes it to every call, and it holds a fixed
 * amount of memory; a caller that passes none gets a fresh one per call and
 * nothing is kept. No cache lives in a module global (issue #10: whether an
 * operation sees cached facts must not depend on what was imported or run
 * before it).
 */
import { BoundedCache } from "../bounded-cache.ts";
import type { ObjectFile, ObjectFileCache } from "../process/objects.ts";

/** Bounds of a context's caches (entries). */
export interface ContextBounds {
  /** IFUNC implementations (per object build-id, symbol, CPU features). Default 4096. */
  ifuncs?: number;
  /** The SPEC §12 `-flive-patching` verdict per target object build-id. Default 256. */
  warnings?: number;
  /**
   * Parsed mapped object files (`process/objects.ts`), each holding the whole
   * file (at most `MAX_OBJECT_FILE_SIZE`). Default 64: a process's libraries
   * and a few versions of them.
   */
  objectFiles?: number;
}

/** The caches one user of xsplice shares across operations. */
export interface XspliceContext {
  /** The implementation an IFUNC resolver chose, as an offset from its object's bias (`load/ifunc.ts`). */
  readonly ifuncs: BoundedCache<string, bigint>;
  /** The `-flive-patching` warning of a target object, by build-id (`execute.ts`). */
  readonly warnings: BoundedCache<string, { warning: string | undefined }>;
  /** Mapped object files read and parsed, by (device, inode, mtime, size) (`process/objects.ts`). */
  readonly objectFiles: ObjectFileCache;
}

/** A new context with empty caches. */
export function createContext(bounds: ContextBounds = {}): XspliceContext {
  return {
    ifuncs: new BoundedCache(bounds.ifuncs ?? 4096),
    warnings: new BoundedCache(bounds.warnings ?? 256),
    objectFiles: new BoundedCache<string, ObjectFile>(bounds.objectFiles ?? 64),
  };
}
