/*
 * fs.h - the few file-system and process primitives Lua lacks, for the
 * sync state stores (src/truto/sync/ stores): a durable write (fsync), an
 * exclusive create (a lock file), the process id and whether a process
 * still runs (a stale lock).
 */
#ifndef TRUTO_FS_H
#define TRUTO_FS_H

#include "compat.h"

/* Adds write_durable, create_exclusive, fsync_dir, getpid and pid_alive
 * to the table on the top of the stack. */
void tfs_register(lua_State *L);

#endif
