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
dependencies = {
  "lua >= 5.1",
  "lua-cjson >= 2.1.0.14",
}
external_dependencies = {
  -- Only the library is probed: Debian keeps curl.h in a multiarch include
  -- directory that LuaRocks does not search, and the compiler finds it anyway.
  CURL = { library = "curl" },
}
build = {
  type = "builtin",
  install = { bin = { ["lua-truto"] = "lua-truto" } },
  copy_directories = { "spec/mock" },
  modules = {
    truto = "src/truto.lua",
    ["truto.options"] = "src/truto/options.lua",
    ["truto.client"] = "src/truto/client.lua",
    ["truto.attempt"] = "src/truto/attempt.lua",
    ["truto.iterate"] = "src/truto/iterate.lua",
    ["truto.transport"] = "src/truto/transport.lua",
    ["truto.rate"] = "src/truto/rate.lua",
    ["truto.rate.redis"] = "src/truto/rate/redis.lua",
    ["truto.ngx"] = "src/truto/ngx.lua",
    ["truto.core"] = {
      sources = {
        "src/buf.c", "src/value.c", "src/query.c", "src/json.c", "src/json_compat.c", "src/retry.c",
        "src/error.c", "src/response.c", "src/pager.c", "src/transport_curl.c", "src/truto.c",
      },
      defines = { "_GNU_SOURCE" },
      libraries = { "curl", "m" },
      libdirs = { "$(CURL_LIBDIR)" },
    },
  },
}
