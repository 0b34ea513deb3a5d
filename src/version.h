/* version.h - the module version, shared by C and (through core.VERSION) Lua. */
#ifndef TRUTO_VERSION_H
#define TRUTO_VERSION_H
#define TRUTO_VERSION "0.1.0"
#endif
