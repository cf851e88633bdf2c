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
-- Sets req's entries as trailers; answers with every metadata entry
-- (ctx.metadata is a plain table: pairs) and whether it is a plain table.
s:handle("md_all", function(req, ctx)
  for k, v in pairs(req) do ctx:set_trailer(k, v) end
  local md, n = rpcnet.map{}, 0
  for k, v in pairs(ctx.metadata) do
    n = n + 1
    md[k] = k:sub(-4) == "-bin" and rpcnet.bytes(v) or v
  end
  return {md = md, n = n, plain = getmetatable(ctx.metadata) == nil}
end)
-- Sends req.n raw messages of req.size bytes: far more than the client
-- buffers, so a client that stops reading holds this handler in send.
s:handle_stream("flood", function(stream, ctx)
  local req = stream:recv()
  local t0 = rpcnet.monotonic()
  for i = 1, req.n do stream:send_raw(string.rep(string.char(i % 256), req.size)) end
  ctx:set_trailer("sent", tostring(req.n))
  ctx:set_trailer("seconds", string.format("%.3f", rpcnet.monotonic() - t0))
end)
-- A slow reader: the first message is {delay = seconds}; it reads nothing
-- for that long (yielding; stops early when the call is cancelled), then
-- reads every raw message and answers {n = count, bytes = total}.
s:handle_stream("slow_sink", function(stream, ctx)
  local first = stream:recv()
  local t_end = rpcnet.monotonic() + first.delay
  while rpcnet.monotonic() < t_end and not ctx:cancelled() do rpcnet.sleep(0.02) end
  local n, bytes = 0, 0
  while true do
    local m = stream:recv_raw()
    if m == nil then break end
    n, bytes = n + 1, bytes + #m
  end
  stream:send({n = n, bytes = bytes})
end)
s:handle("shutdown", function() s:shutdown(1) return true end)

local port = s:listen("127.0.0.1:0")
io.stdout:write(port, "\n")
io.stdout:flush()
s:serve{duration = 120}
s:close()
