-- luacheck configuration: `luacheck src/truto.lua lua-truto spec examples`
-- (or `make lint`). Lua 5.4 everywhere except the mock server, which runs
-- inside nginx (LuaJIT with the ngx API).
std = "lua54"
max_line_length = 120
max_code_line_length = 120
max_string_line_length = false -- help texts and expected outputs
max_comment_line_length = 120
codes = true

-- The command line script has no .lua extension.
files["lua-truto"] = {}

-- Busted specs: describe/it/assert/...; expected outputs make long lines.
files["spec/**/*_spec.lua"] = { std = "+busted", max_line_length = 150, max_code_line_length = 150 }
files["spec/helpers/*.lua"] = { std = "+busted" }

-- The mock Truto server: nginx's LuaJIT with ngx, and plain Lua 5.1 code.
files["spec/mock/truto_mock/*.lua"] = { std = "luajit+ngx_lua" }

exclude_files = { "build/**", ".luarocks/**", "lua_modules/**" }
