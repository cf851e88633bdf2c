-- Echo client: rpcnet Lua binding (see echo_server.lua).
--   LUA_PATH='bindings/lua/?.lua;;' LUA_CPATH='build/bindings/lua/?.so;;' \
--     lua5.4 examples/lua/echo_client.lua /tmp/pki 127.0.0.1:7000
local rpcnet = require("rpcnet")
local dir, addr = arg[1] or "pki", arg[2] or "127.0.0.1:7000"

local c <close> = rpcnet.connect(addr, {ca_file = dir .. "/ca.pem"})

local v, trailers = c:call("echo", {hello = "world", n = 42, pi = 3.25, raw = rpcnet.bytes("\0\1")},
                          {timeout = 2, trailers = true})
print("echo:", v.hello, v.n, v.pi, #v.raw)
for k, val in pairs(trailers) do print("trailer:", k, val) end

local s <close> = c:bidi("echo_stream", {timeout = 5})
for i = 1, 3 do s:send("message " .. i) end
s:close_send()
for msg in s:messages() do print("stream:", msg) end
print("status:", rpcnet.status.OK == s.status and "OK" or s.status)

local ok, err = pcall(c.call, c, "no_such_method", 1)
print("error:", ok, tostring(err))

if arg[3] == "quit" then c:call("quit", true) end
