rockspec_format = "3.0"
package = "lua-truto"
version = "scm-1"
source = {
  url = "git+https://github.com/lua-truto/lua-truto.git",
}
description = {
  summary = "Truto's unified User Directory API for Lua, in C on libcurl",
  detailed = [[
    Lists users and groups of any connected SaaS directory through Truto's
    unified API as Lua iterators, reads and changes organizations, with
    Truto's query parameters encoded exactly, one keep-alive connection per
    client, and structured errors.
  ]],
  license = "MIT",
}
-- What CI proves through LuaRocks: Lua 5.4 (spec/install_spec.lua runs the
-- README's `luarocks --lua-version 5.4 make` line). LuaJIT (OpenResty) is
-- built with `make LUA=luajit` and tested by `make test-luajit` and the nginx
-- spec; PUC Lua 5.1 to 5.3 are not tested, so not claimed.
dependencies = {
  "lua == 5.4",
  "lua-cjson >= 2.1.0.14",
  -- The CLI's completion scripts (truto.cli.grammar); `require "truto"` does not need it.
  "argparse >= 0.7.1",
}
external_dependencies = {
  -- Only the library is probed: Debian keeps curl.h in a multiarch include
  -- directory that LuaRocks does not search, and the compiler finds it anyway.
  CURL = { library = "curl" },
  -- HMAC-SHA256 of webhook signatures (Debian: libssl-dev).
  CRYPTO = { header = "openssl/hmac.h", library = "crypto" },
}
build = {
  type = "builtin",
  install = { bin = { ["lua-truto"] = "lua-truto" } },
  copy_directories = { "spec/mock" },
  modules = {
    -- every Lua module and C file under src/ (spec/install_spec.lua checks the lists)
    truto = "src/truto.lua",
    ["truto.attempt"] = "src/truto/attempt.lua",
    ["truto.cli.args"] = "src/truto/cli/args.lua",
    ["truto.cli.body"] = "src/truto/cli/body.lua",
    ["truto.cli.commands"] = "src/truto/cli/commands.lua",
    ["truto.cli.config"] = "src/truto/cli/config.lua",
    ["truto.cli.connection"] = "src/truto/cli/connection.lua",
    ["truto.cli.grammar"] = "src/truto/cli/grammar.lua",
    ["truto.cli.help"] = "src/truto/cli/help.lua",
    ["truto.cli"] = "src/truto/cli/init.lua",
    ["truto.cli.json"] = "src/truto/cli/json.lua",
    ["truto.cli.output"] = "src/truto/cli/output.lua",
    ["truto.cli.progress"] = "src/truto/cli/progress.lua",
    ["truto.cli.stream"] = "src/truto/cli/stream.lua",
    ["truto.cli.sys"] = "src/truto/cli/sys.lua",
    ["truto.cli.text"] = "src/truto/cli/text.lua",
    ["truto.cli.webhook"] = "src/truto/cli/webhook.lua",
    ["truto.client"] = "src/truto/client.lua",
    ["truto.defaults"] = "src/truto/defaults.lua",
    ["truto.iterate"] = "src/truto/iterate.lua",
    ["truto.iterate.stream"] = "src/truto/iterate/stream.lua",
    ["truto.metrics"] = "src/truto/metrics.lua",
    ["truto.ngx"] = "src/truto/ngx.lua",
    ["truto.ngx.connect"] = "src/truto/ngx/connect.lua",
    ["truto.ngx.exchange"] = "src/truto/ngx/exchange.lua",
    ["truto.ngx.gzip"] = "src/truto/ngx/gzip.lua",
    ["truto.ngx.parser"] = "src/truto/ngx/parser.lua",
    ["truto.ngx.request"] = "src/truto/ngx/request.lua",
    ["truto.ngx.settings"] = "src/truto/ngx/settings.lua",
    ["truto.ngx.waiters"] = "src/truto/ngx/waiters.lua",
    ["truto.options"] = "src/truto/options.lua",
    ["truto.rate"] = "src/truto/rate.lua",
    ["truto.raise"] = "src/truto/raise.lua",
    ["truto.rate.redis"] = "src/truto/rate/redis.lua",
    ["truto.rate.hints"] = "src/truto/rate/hints.lua",
    ["truto.rate.local"] = "src/truto/rate/local.lua",
    ["truto.rate.dict"] = "src/truto/rate/dict.lua",
    ["truto.rate.window"] = "src/truto/rate/window.lua",
    ["truto.rate.option"] = "src/truto/rate/option.lua",
    ["truto.time"] = "src/truto/time.lua",
    ["truto.transport"] = "src/truto/transport.lua",
    ["truto.webhook"] = "src/truto/webhook.lua",
    ["truto.sync"] = "src/truto/sync.lua",
    ["truto.sync.options"] = "src/truto/sync/options.lua",
    ["truto.sync.file"] = "src/truto/sync/file.lua",
    ["truto.sync.sqlite"] = "src/truto/sync/sqlite.lua",
    ["truto.sync.redis"] = "src/truto/sync/redis.lua",
    ["truto.cli.sync"] = "src/truto/cli/sync.lua",
    ["truto.cli.mock_change"] = "src/truto/cli/mock_change.lua",
    ["truto.core"] = {
      sources = {
        "src/buf.c", "src/value.c", "src/query.c", "src/json_encode.c", "src/json_scan.c", "src/json_plan.c",
        "src/json_cjson.c", "src/json_decode.c", "src/json_compat.c", "src/retry.c",
        "src/error.c", "src/response.c", "src/pager.c", "src/curl_request.c", "src/curl_client.c", "src/curl_drive.c",
        "src/curl_answer.c", "src/transport_curl.c", "src/hmac.c", "src/fs.c", "src/truto.c",
      },
      defines = { "_GNU_SOURCE" },
      libraries = { "curl", "crypto", "m" },
      libdirs = { "$(CURL_LIBDIR)", "$(CRYPTO_LIBDIR)" },
    },
  },
}
