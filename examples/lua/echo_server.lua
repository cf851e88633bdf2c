-- Echo server: rpcnet Lua binding.
--   bash scripts/gen-certs.sh /tmp/pki
--   LUA_PATH='bindings/lua/?.lua;;' LUA_CPATH='build/bindings/lua/?.so;;' \
--     lua5.4 examples/lua/echo_server.lua /tmp/pki 7000
local rpcnet = require("rpcnet")
local dir, port = arg[1] or "pki", arg[2] or "7000"

local s <close> = rpcnet.server{cert_file = dir .. "/server.pem", key_file = dir .. "/server-key.pem"}

-- Unary: any value in, the same value out.
s:handle("echo", function(req, ctx)
  ctx:set_trailer("peer", ctx.peer)
  return req
end)

-- Bidirectional streaming: every message comes back. The handler runs as a
-- coroutine: while it waits in recv, other calls are served.
s:handle_stream("echo_stream", function(stream)
  for msg in stream:messages() do stream:send(msg) end
end)

-- Lets the client stop the server.
s:handle("quit", function() s:shutdown(1) return true end)

print("listening on 127.0.0.1:" .. s:listen("127.0.0.1:" .. port))
io.stdout:flush()
s:serve()
print("server stopped")
