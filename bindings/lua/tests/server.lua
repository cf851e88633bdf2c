-- Test server for run.lua: started as a child process with the certificate
-- directory as argument; prints its port on stdout, serves until the
-- "shutdown" method is called (or 120 s pass).
local rpcnet = require("rpcnet")
local certs = assert(arg[1], "usage: server.lua CERTDIR")

local s = rpcnet.server{cert_file = certs .. "/server.pem", key_file = certs .. "/server-key.pem"}
s:handle("add", function(req) return {sum = req.a + req.b} end)
s:handle("echo", function(req) return req end)
s:handle_raw("echo_raw", function(data) return data end)
s:handle("fail", function(req) error(rpcnet.error("NOT_FOUND", "no such thing: " .. tostring(req))) end)
s:handle("boom", function() error("kaboom") end)
s:handle("bad_answer", function() return "\xff" end) -- not valid UTF-8: INTERNAL
s:handle("meta", function(req, ctx)
  ctx:set_trailer("x-trace", "abc")
  ctx:set_trailer("blob-bin", "\0\1\2")
  return {auth = ctx.metadata["authorization"], peer = ctx.peer,
          has_deadline = ctx.deadline ~= nil, deadline = ctx.deadline or -1,
          cancelled = ctx:cancelled(), method = ctx.method}
end)
-- Sleeps (yielding) for req seconds, or until the call is cancelled.
s:handle("sleep", function(req, ctx)
  local t0 = rpcnet.monotonic()
  while rpcnet.monotonic() - t0 < req and not ctx:cancelled() do rpcnet.sleep(0.02) end
  return "slept"
end)
s:handle_stream("countdown", function(stream, ctx)
  local n = stream:recv()
  for i = n, 1, -1 do stream:send(i) end
  ctx:set_trailer("count", tostring(n))
end)
s:handle_stream("sum", function(stream)
  local total = 0
  for v in stream:messages() do total = total + v end
  stream:send(total)
end)
s:handle_stream("chat", function(stream, ctx)
  for m in stream:messages() do
    if m == "fail" then error(rpcnet.error("ABORTED", "asked to fail")) end
    stream:send({echo = m})
  end
  ctx:set_trailer("done", "yes")
end)
s:handle("shutdown", function() s:shutdown(1) return true end)

local port = s:listen("127.0.0.1:0")
io.stdout:write(port, "\n")
io.stdout:flush()
s:serve{duration = 120}
s:close()
