/*
 * Disable worker.c's leftover breakpoint without a restart: one NOP entry
 * (SPEC §3) overwrites the first byte of debug_break, its `int3`, with a
 * 1-byte NOP. The `ret` after it stays, so every call returns at once; a
 * revert writes the `int3` back from the undo buffer.
 *
 *   xsplice build examples/debug-trap/nop.c --target worker -o nop.xsplice
 *   xsplice load PID nop.xsplice
 */
#include <xsplice.h>

XSPLICE_NOP(debug_break, 1);
XSPLICE_METADATA("summary=remove the int3 left in debug_break");
