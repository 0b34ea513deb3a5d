/*
 * pager.h - the state of one walk through a cursor-paginated list.
 *
 * It reads each decoded page ({ result = ..., next_cursor = ... }), says
 * what to yield and which cursor to ask for next, and stops the walk when
 * the list ends (null, missing or empty cursor) or when a cursor repeats one
 * already seen (the remote side is looping). It performs no I/O: whoever
 * drives the loop (C with libcurl, or Lua under nginx) feeds it pages.
 */
#ifndef TRUTO_PAGER_H
#define TRUTO_PAGER_H

#include "compat.h"

#define TRUTO_PAGER_MT "truto.pager"

/* core.pager([start_cursor]) -> pager */
int tpager_new(lua_State *L);

/* Creates the metatable; call once from luaopen. */
void tpager_register(lua_State *L);

#endif
