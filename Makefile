# lua-truto: build, test, install, mock, demo.
# `make deps` installs the Debian packages the module, the command line, the
# tests and the mock need; `make dev-deps` adds the developer tools (lint,
# sanitizers, valgrind, fuzzing). `make deps test` works as one command on a
# fresh Debian 12: nothing below asks pkg-config anything before a recipe
# runs (recursive `=` variables, computed once on first use).

# The runtime: LUA=5.4 (the default), 5.3, 5.1 or luajit. One C source for
# all; the differences are in src/compat.h. Every runtime but 5.4 builds into
# its own directory (build-luajit, build-5.1, ...), so build/ stays 5.4's.
LUA        ?= 5.4
ifeq ($(LUA),luajit)
LUA_BIN    ?= luajit
LUA_PC     ?= luajit
LUA_ABI    ?= 5.1
else
LUA_BIN    ?= lua$(LUA)
LUA_PC     ?= lua$(LUA)
LUA_ABI    ?= $(LUA)
endif
ifeq ($(LUA),5.4)
BUILD      ?= build
else
BUILD      ?= build-$(LUA)
endif
# .busted and the specs load the module from here.
export TRUTO_BUILD ?= $(BUILD)
PREFIX     ?= /usr/local
LUA_CMOD   ?= $(PREFIX)/lib/lua/$(LUA_ABI)
LUA_LMOD   ?= $(PREFIX)/share/lua/$(LUA_ABI)
BUSTED     ?= $(LUA_BIN) /usr/bin/busted

CC         ?= cc
WARN       := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
CFLAGS     ?= -O2 -g
# Asked of pkg-config when a recipe first needs them (after `make deps`),
# then kept: `X = $(eval X := value)$(X)` runs the shell once.
PC_CFLAGS   = $(eval PC_CFLAGS := $$(shell pkg-config --cflags $(LUA_PC) libcurl libcrypto))$(PC_CFLAGS)
PC_LUA_CFLAGS = $(eval PC_LUA_CFLAGS := $$(shell pkg-config --cflags $(LUA_PC)))$(PC_LUA_CFLAGS)
PC_LUA_LIBS = $(eval PC_LUA_LIBS := $$(shell pkg-config --libs $(LUA_PC)))$(PC_LUA_LIBS)
PC_LIBS     = $(eval PC_LIBS := $$(shell pkg-config --libs libcurl libcrypto))$(PC_LIBS)
ALL_CFLAGS  = -std=c11 -D_GNU_SOURCE -fPIC $(WARN) $(CFLAGS) $(PC_CFLAGS)
LDLIBS      = $(PC_LIBS) -lm
LDFLAGS    ?=

SRCS := src/buf.c src/value.c src/query.c src/json_encode.c src/json_scan.c src/json_plan.c src/json_cjson.c src/json_decode.c \
        src/json_compat.c src/retry.c src/error.c \
        src/response.c src/pager.c src/curl_request.c src/curl_client.c src/curl_drive.c src/curl_answer.c \
        src/transport_curl.c src/hmac.c src/fs.c src/truto.c
OBJS := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
CORE := $(BUILD)/truto/core.so
# Every Lua module of the package: src/truto.lua and src/truto/**/*.lua,
# copied into the build directory under the same names.
LUA_SRCS := src/truto.lua $(sort $(shell find src/truto -name '*.lua'))
LUA_MODS := $(LUA_SRCS:src/%=$(BUILD)/%)

# What the module, the command line, `make test` and `make demo` need: the
# compiler and headers, lua-cjson, busted and LuaSocket for the specs, nginx
# with its Lua module and Redis for the mock, openssl for the TLS spec,
# luarocks for the install spec, LuaJIT (luajit2) because the nginx spec
# builds the module for OpenResty's LuaJIT, and procps (ps) for the mock spec.
DEB_PACKAGES := lua5.4 liblua5.4-dev lua-cjson libcurl4-openssl-dev pkg-config gcc make libc6-dev \
                lua-busted lua-socket nginx-light libnginx-mod-http-lua lua-nginx-redis redis-server \
                openssl ca-certificates luarocks luajit2 libluajit2-5.1-dev curl procps libssl-dev locales
# Developer tools on top: lint, docs, formatting, sanitizers, valgrind, fuzzing.
DEV_DEB_PACKAGES := lua-check lua-ldoc lua-markdown clang-format clang-tidy clang libclang-rt-14-dev \
                    valgrind lua-luaossl cppcheck

.PHONY: all deps dev-deps check-fresh test test-fast test-gc test-gc-full cppcheck test-locale test-asan test-valgrind test-luajit mock demo demo-nginx install clean examples docs lint format-check bench fuzz

all: $(CORE) $(LUA_MODS)

# A test-only C module (fork, wait) for the process-hygiene specs.
TESTPOSIX := $(BUILD)/testposix.so
$(TESTPOSIX): spec/tools/testposix.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -shared $(LDFLAGS) -o $@ $<

# A test-only LD_PRELOAD shim that makes libcurl's multi calls fail on
# request, for the transport-failure specs.
CURLFAIL := $(BUILD)/curlfail.so
$(CURLFAIL): spec/tools/curlfail.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -shared $(LDFLAGS) -o $@ $<

$(BUILD)/obj/%.o: src/%.c src/*.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(CORE): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -o $@ $(OBJS) $(LDLIBS)

$(BUILD)/%.lua: src/%.lua
	@mkdir -p $(dir $@)
	cp $< $@

# Installs whatever of the packages is missing (needs root on Debian 12).
define install_missing
	@missing=$$(for p in $(1); do dpkg -s $$p 2>/dev/null | grep -q '^Status: install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $$missing; \
	fi
endef

# The locale `make test-locale` runs the suite in (a "," decimal point).
TEST_LOCALE := de_DE.UTF-8
# Sync: the SQLite mirror (LuaSQL's driver) and the sqlite3 shell its specs query it with.
DEB_PACKAGES += lua-sql-sqlite3 sqlite3
# The CLI's completion scripts are written by argparse (truto.cli.grammar).
DEB_PACKAGES += lua-argparse

deps:
	$(call install_missing,$(DEB_PACKAGES))
	@if ! locale -a 2>/dev/null | grep -qix 'de_DE.utf-\?8'; then \
	  echo "generating the locale $(TEST_LOCALE)"; \
	  sed -i 's/^# *\($(TEST_LOCALE) UTF-8\)/\1/' /etc/locale.gen; \
	  grep -q '^$(TEST_LOCALE) UTF-8' /etc/locale.gen || echo '$(TEST_LOCALE) UTF-8' >> /etc/locale.gen; \
	  locale-gen; \
	fi

dev-deps: deps
	$(call install_missing,$(DEV_DEB_PACKAGES))

# The README's two commands (`make deps demo`, `make deps test`), each on a
# fresh minimal Debian 12 root (debootstrap --variant=minbase bookworm, plus
# only make, git and ca-certificates) holding a clone of HEAD. Needs root
# and Debian's mirror; installs debootstrap when missing. .ci/check-fresh.
check-fresh:
	.ci/check-fresh

test: all $(TESTPOSIX) $(CURLFAIL)
	$(BUSTED)

# The unit specs, in under 30 s: the .busted task `fast` (no nginx, no case that waits seconds).
test-fast: all $(TESTPOSIX) $(CURLFAIL)
	$(BUSTED) --run=fast

# The unit specs (the fast set) with the collector forced: no pause between
# cycles, four times the step, a full collection after every test
# (spec/helpers/gc.lua). About 6x the time of test-fast.
test-gc: all $(TESTPOSIX) $(CURLFAIL)
	TRUTO_FORCE_GC=1 $(BUSTED) --run=fast

# The whole suite with the collector forced (about 2x `make test`).
test-gc-full: all $(TESTPOSIX) $(CURLFAIL)
	TRUTO_FORCE_GC=1 $(BUSTED)

# The whole suite again with LC_ALL=de_DE.UTF-8 in the environment of every
# process it starts (spec/locale_spec.lua also sets LC_NUMERIC inside the
# process, where the C code runs).
test-locale: all $(TESTPOSIX) $(CURLFAIL)
	LC_ALL=$(TEST_LOCALE) $(BUSTED)

# The whole suite with AddressSanitizer + UBSan in the module, run by a
# sanitized Lua host (spec/tools/lua_host.c) so the mock nginx stays plain.
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
ASAN_BUILD := build-asan
test-asan:
	$(MAKE) BUILD=$(ASAN_BUILD) CFLAGS="-O1 -g $(SAN_FLAGS)" LDFLAGS="$(SAN_FLAGS)" all $(ASAN_BUILD)/testposix.so
	$(CC) -O1 -g $(SAN_FLAGS) $(PC_LUA_CFLAGS) spec/tools/lua_host.c \
	  -o $(ASAN_BUILD)/lua_host $(PC_LUA_LIBS) -lm
	TRUTO_BUILD=$(ASAN_BUILD) TRUTO_SOAK_REQUESTS=5000 TRUTO_SOAK_CHECK_RSS=0 \
	  ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(ASAN_BUILD)/lua_host /usr/bin/busted

# The whole suite under valgrind memcheck: any error or definite leak fails it.
test-valgrind: all $(TESTPOSIX) $(CURLFAIL)
	TRUTO_SOAK_REQUESTS=1000 TRUTO_SOAK_CHECK_RSS=0 \
	  valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	  --show-leak-kinds=definite $(LUA_BIN) /usr/bin/busted

# The whole suite on LuaJIT (the runtime of OpenResty), built into build-luajit.
# The command line and the examples are Lua 5.4 scripts: their specs run them
# with lua5.4 on build/, so that is built too.
test-luajit: all
	$(MAKE) test LUA=luajit BUILD=build-luajit TRUTO_BUILD=build-luajit

mock:
	spec/mock/serve --port $${PORT:-8089} --foreground

demo: all
	LUA_BIN=$(LUA_BIN) examples/demo.sh
	LUA_BIN=$(LUA_BIN) examples/demo-sync.sh

# examples/nginx.conf and examples/openresty.lua in a real nginx against the mock.
demo-nginx:
	$(MAKE) all LUA=luajit BUILD=build-luajit TRUTO_BUILD=build-luajit
	TRUTO_NGINX_BUILD=build-luajit examples/demo-nginx.sh

BINDIR   ?= $(PREFIX)/bin
SHAREDIR ?= $(PREFIX)/share/lua-truto

# The module, the command line and the mock server (for `lua-truto mock`).
install: all
	install -d $(DESTDIR)$(LUA_CMOD)/truto $(DESTDIR)$(LUA_LMOD)
	install -m 755 $(CORE) $(DESTDIR)$(LUA_CMOD)/truto/core.so
	for f in $(LUA_SRCS:src/%=%); do \
	  install -D -m 644 src/$$f $(DESTDIR)$(LUA_LMOD)/$$f || exit 1; \
	done
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SHAREDIR)/mock/truto_mock
	install -m 755 lua-truto $(DESTDIR)$(BINDIR)/lua-truto
	install -m 755 spec/mock/serve $(DESTDIR)$(SHAREDIR)/mock/serve
	install -m 644 spec/mock/truto_mock/*.lua $(DESTDIR)$(SHAREDIR)/mock/truto_mock/
	install -m 644 spec/mock/README.md $(DESTDIR)$(SHAREDIR)/mock/README.md

# Every example script, run against the mock server and its output checked.
examples: all
	$(BUSTED) spec/examples_spec.lua

# The LDoc reference (config.ld) in build/doc/, failing on any LDoc
# warning; then the user guide (README.md, docs/*.md): its Lua blocks
# compile, its links resolve, and every exported function, client method
# and option is documented there and has an LDoc comment.
docs: all
	@ldoc . >$(BUILD)/ldoc.log 2>&1 || { cat $(BUILD)/ldoc.log; exit 1; }
	@cat $(BUILD)/ldoc.log
	@! grep -v -e '^reading configuration from ' -e '^output written to ' $(BUILD)/ldoc.log
	$(BUSTED) spec/docs_spec.lua spec/readme_spec.lua

# luacheck with .luacheckrc; clang-tidy with .clang-tidy.
lint: all
	luacheck $(LUA_SRCS) lua-truto spec examples
	clang-tidy --quiet --warnings-as-errors="*" $(SRCS) -- -std=c11 -D_GNU_SOURCE $(PC_CFLAGS)

# cppcheck over the C of src/ (warning, style, performance, portability): any finding fails it.
# Two findings are cppcheck not knowing the code, suppressed here by file: truto.c's `bytes`
# is filled by getrandom(2), which cppcheck does not model (unassignedVariable), and in
# curl_answer.c's header walk `p` is never NULL inside the loop that tests it
# (nullPointerArithmeticRedundantCheck).
CPPCHECK_FLAGS := --enable=warning,style,performance,portability --std=c11 -D_GNU_SOURCE --inline-suppr \
  --error-exitcode=1 --quiet --suppress=missingIncludeSystem \
  --suppress=unassignedVariable:src/truto.c --suppress=nullPointerArithmeticRedundantCheck:src/curl_answer.c
cppcheck:
	cppcheck $(CPPCHECK_FLAGS) $(SRCS)

# Side-by-side benchmark against the clients a user would otherwise pick
# (Node fetch, Python requests, LuaSocket, curl + jq); writes bench/RESULTS.md.
# Then the client alone against static files on both lua-cjson versions
# (S6, S7), and inside nginx: worker CPU against lua-resty-http, /fast
# latency while 20 listings run on 4 workers, and the shared rate budget.
# Then webhook verification (bench/webhook.lua) beside lua-luaossl.
# Then sync: 100,000 users, 1 % changed, file state and SQLite (bench/sync.sh).
bench: all cjson-current
	$(MAKE) all LUA=luajit BUILD=build-luajit TRUTO_BUILD=build-luajit
	bench/run
	bench/static.sh
	bench/nginx_cpu.sh 20 20000 180 4
	bench/nginx_concurrency.sh 20 500 1 4
	bench/rate_budget.sh 50 2 10 25
	$(LUA_BIN) bench/webhook.lua 10000 4096
	TRUTO_BUILD=build-luajit luajit bench/webhook.lua 10000 4096
	bench/sync.sh

# libFuzzer targets for the pure core (fuzz/README.md): replay the known
# findings, then fuzz each target for FUZZ_SECONDS.
FUZZ_SECONDS ?= 60
fuzz:
	$(MAKE) -C fuzz findings
	$(MAKE) -C fuzz run SECONDS=$(FUZZ_SECONDS)

format-check:
	clang-format --dry-run --Werror $(SRCS) src/*.h

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)

# ---- JSON: the lua-cjson compatibility file and the current lua-cjson ----
# test-cjson: the whole suite again with the current lua-cjson (openresty
# 2.1.0.17, what LuaRocks and OpenResty ship), built from the unmodified
# source in CJSON_SRC into private directories (the source tree is copied
# first and stays untouched): one for Lua 5.4, on LUA_CPATH_5_4 after the
# module's build (Lua 5.4 reads that variable before LUA_CPATH, so every
# lua5.4 a spec starts finds both), and one for LuaJIT, first on LUA_CPATH,
# which then only LuaJIT (the nginx specs) reads. The JSON specs check that the module uses lua-cjson's own
# values (TRUTO_CJSON=current).
CJSON_SRC   ?= ../shared/vendor/lua-cjson-2.1.0.17
CJSON_BUILD ?= build-cjson
CJSON_SO    := $(CJSON_BUILD)/cjson.so
CJSON_JIT   := $(CJSON_BUILD)/luajit/cjson.so
.PHONY: test-cjson cjson-current
cjson-current: $(CJSON_SO) $(CJSON_JIT)
# $(1): target .so, $(2): pkg-config name of the Lua it is for
define build_cjson
	rm -rf $(dir $(1))src
	@mkdir -p $(dir $(1))
	cp -R $(CJSON_SRC) $(dir $(1))src
	$(MAKE) -s -C $(dir $(1))src LUA_INCLUDE_DIR=$(patsubst -I%,%,$(firstword $(shell pkg-config --cflags-only-I $(2)))) \
	  CFLAGS="-O2 -g -fPIC" cjson.so
	cp $(dir $(1))src/cjson.so $(1)
endef
$(CJSON_SO):
	$(call build_cjson,$@,lua5.4)
$(CJSON_JIT):
	$(call build_cjson,$@,luajit)

test-cjson: all $(TESTPOSIX) $(CJSON_SO) $(CJSON_JIT)
	$(MAKE) all LUA=luajit BUILD=build-luajit TRUTO_BUILD=build-luajit
	LUA_CPATH_5_4="$(abspath $(BUILD))/?.so;$(abspath $(CJSON_BUILD))/?.so;;" \
	  LUA_CPATH="$(abspath $(CJSON_BUILD))/luajit/?.so;;" TRUTO_CJSON=current $(BUSTED)
