-- rpcnet Lua binding tests. Run from anywhere:
--   LUA_PATH='bindings/lua/?.lua;;' LUA_CPATH='BUILD/bindings/lua/?.so;;' \
--   RPCNET_CERTS=DIR lua5.4 bindings/lua/tests/run.lua
-- (make test-lua does this). Ends with "N passed, N failed"; exits 1 on
-- any failure. The cluster tests (tests/cluster.lua) run last; they find
-- the C examples in the build directory of LUA_CPATH's _rpcnet_c.so (or
-- RPCNET_BUILD_DIR).
local here = (arg and arg[0] or "run.lua"):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. here .. "/../?.lua;" .. package.path
local root = here .. "/../../.."
local rpcnet = require("rpcnet")
local json = require("json")

local passed, failed = 0, 0
local only = os.getenv("RPCNET_TEST_ONLY")
local timing = os.getenv("RPCNET_TEST_TIMING") -- set: print each passing test's duration
local function test(name, fn)
  if only and not name:find(only, 1, true) then return end
  if timing then
    local inner = fn
    fn = function()
      local t0 = rpcnet.monotonic()
      inner()
      io.stdout:write(string.format("  %.2f s  %s\n", rpcnet.monotonic() - t0, name))
    end
  end
  local ok, err = xpcall(fn, function(e)
    return (type(e) == "string" and e or tostring(e)) .. "\n" .. debug.traceback("", 2)
  end)
  if ok then passed = passed + 1
  else
    failed = failed + 1
    io.stdout:write("FAIL ", name, ": ", err, "\n")
  end
end
local function eq(a, b, what)
  if a ~= b then error((what or "value") .. ": expected " .. tostring(b) .. ", got " .. tostring(a), 2) end
end
local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
local function unhex(h) return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)) end
-- Runs fn, which must raise an rpcnet error value; returns it.
local function raises(fn, name, kind)
  local ok, e = pcall(fn)
  if ok then error("expected an error " .. (name or kind or ""), 2) end
  if not rpcnet.is_error(e) then error("expected an rpcnet error value, got " .. tostring(e), 2) end
  if name and e.name ~= name then error("expected " .. name .. ", got " .. tostring(e), 2) end
  if kind and e.kind ~= kind then error("expected kind " .. kind .. ", got " .. tostring(e), 2) end
  return e
end

---------------------------------------------------------------------------
-- Values: every conformance vector
---------------------------------------------------------------------------
local f = assert(io.open(root .. "/conformance/vectors/values.json", "rb"))
local doc = json.decode(f:read("a"))
f:close()
eq(doc.max_depth, rpcnet.max_depth, "max_depth")
for _, v in ipairs(doc.vectors) do
  test("vector " .. v.name, function()
    local input = unhex(v.hex)
    local want_err = v.error or (v.binding_errors and v.binding_errors.lua)
    if want_err then
      raises(function() return rpcnet.decode(input) end, "INVALID_ARGUMENT", want_err)
      return
    end
    local val = rpcnet.decode(input)
    local canon = unhex(v.canonical or v.hex)
    eq(hex(rpcnet.encode(val)), hex(canon), "encode(decode(hex))")
    eq(hex(rpcnet.encode(rpcnet.decode(canon))), hex(canon), "round trip")
    for i = 0, #input - 1 do
      raises(function() return rpcnet.decode(input:sub(1, i)) end, nil, "truncated")
    end
  end)
end

---------------------------------------------------------------------------
-- Values: the Lua mapping
---------------------------------------------------------------------------
local E = function(v) return hex(rpcnet.encode(v)) end
test("lua integers and floats keep their subtype", function()
  eq(E(1), "01"); eq(E(1.0), "f93c00"); eq(E(-0.0), "f98000"); eq(E(0/0), "f97e00")
  eq(E(math.huge), "f97c00"); eq(E(1.1), "fb3ff199999999999a"); eq(E(100000.0), "fa47c35000")
  eq(math.type(rpcnet.decode(unhex("f93c00"))), "float"); eq(math.type(rpcnet.decode(unhex("01"))), "integer")
  eq(E(math.mininteger), "3b7fffffffffffffff"); eq(E(math.maxinteger), "1b7fffffffffffffff")
end)
test("big integers as rpcnet.int", function()
  local big = rpcnet.decode(unhex("1bffffffffffffffff"))
  assert(rpcnet.is_int(big)); eq(tostring(big), "18446744073709551615")
  eq(E(rpcnet.int("18446744073709551615")), "1bffffffffffffffff")
  eq(E(rpcnet.int("-18446744073709551616")), "3bffffffffffffffff")
  eq(E(rpcnet.int("-9223372036854775809")), "3b8000000000000000")
  eq(tostring(rpcnet.decode(unhex("3b8000000000000000"))), "-9223372036854775809")
  eq(rpcnet.int("42"), 42)
  assert(not pcall(rpcnet.int, "18446744073709551616"))
  assert(not pcall(rpcnet.int, "-18446744073709551617"))
end)
test("strings: text vs rpcnet.bytes, binary safe", function()
  eq(E("a\0b"), "63610062")
end)
test("strings: text must be UTF-8; bytes carry anything", function()
  eq(E("ü"), "62c3bc"); eq(E(rpcnet.bytes("\xff\0")), "42ff00")
  raises(function() rpcnet.encode("\xff") end, "INVALID_ARGUMENT", "utf8")
  local b = rpcnet.decode(unhex("42ff00"))
  assert(rpcnet.is_bytes(b)); eq(b:value(), "\xff\0"); eq(tostring(b), "\xff\0"); eq(#b, 2)
  assert(b == rpcnet.bytes("\xff\0"))
  local m = rpcnet.decode(unhex("a141ff01")) -- {h'ff': 1}
  eq(m[rpcnet.bytes("\xff")], 1, "interned byte-string key")
end)
test("tables: markers, empty table, array detection", function()
  eq(E({}), "a0"); eq(E(rpcnet.array{}), "80"); eq(E(rpcnet.map{}), "a0")
  eq(E({1, 2}), "820102"); eq(E({[1] = 1, [3] = 3}), "a201010303")
  eq(E({rpcnet.null, true}), "82f6f5"); eq(E(nil), "f6")
  eq(E(rpcnet.map{[1] = "a"}), "a1016161")
  eq(E({b = 1, aa = 2}), "a2616201626161" .. "02")
  local a = rpcnet.decode(unhex("80")); assert(rpcnet.is_array(a)); eq(E(a), "80")
  local m = rpcnet.decode(unhex("a0")); assert(rpcnet.is_map(m)); eq(E(m), "a0")
  local one = rpcnet.decode(unhex("a10102")) -- {1: 2}: a map, even though its key is 1
  eq(E(one), "a10102")
end)
test("tags", function()
  eq(E(rpcnet.tag(1, 1363896240)), "c11a514b67b0")
  local t = rpcnet.decode(unhex("d864d8c86178"))
  assert(rpcnet.is_tag(t)); eq(t.tag, 100); eq(t.value.tag, 200); eq(t.value.value, "x")
  eq(E(rpcnet.tag(rpcnet.int("18446744073709551615"), 0)), "dbffffffffffffffff00")
end)
test("encode errors: depth, unsupported types, duplicate keys", function()
  local deep = {}
  local cur = deep
  for _ = 1, 64 do local n = {}; cur[1] = n; cur = n end
  raises(function() rpcnet.encode(deep) end, "INVALID_ARGUMENT", "depth")
  local cyc = {}; cyc[1] = cyc
  raises(function() rpcnet.encode(cyc) end, nil, "depth")
  raises(function() rpcnet.encode(print) end, nil, "unsupported")
  raises(function() rpcnet.encode({[{1}] = 1, [rpcnet.array{1}] = 2}) end, nil, "duplicate_key")
  local e = raises(function() rpcnet.decode("\x1c") end, nil, "malformed")
  eq(e.code, rpcnet.status.INVALID_ARGUMENT)
  assert(tostring(e):find("malformed"), tostring(e))
end)
test("decode: 16 MiB byte string", function()
  local s = string.rep("\0\1\2\3", 4 * 1024 * 1024)
  local enc = rpcnet.encode(rpcnet.bytes(s))
  eq(#enc, #s + 5)
  eq(rpcnet.decode(enc):value() == s, true)
end)
test("error values", function()
  local e = rpcnet.error("NOT_FOUND", "x")
  eq(e.code, 5); eq(e.name, "NOT_FOUND"); eq(e.message, "x")
  eq(tostring(e), "rpcnet error NOT_FOUND (5): x")
  eq(rpcnet.error(14).name, "UNAVAILABLE")
end)

---------------------------------------------------------------------------
-- Loopback: a server process (tests/server.lua) and this client
---------------------------------------------------------------------------
local certs = os.getenv("RPCNET_CERTS")
if not certs then
  certs = os.tmpname() .. ".d"
  assert(os.execute("bash " .. root .. "/scripts/gen-certs.sh " .. certs .. " >/dev/null"))
end
local lua = os.getenv("LUA") or "lua5.4"
local srv_proc = assert(io.popen(lua .. " " .. here .. "/server.lua " .. certs, "r"))
local port = tonumber(srv_proc:read("l") or "")
local addr = "127.0.0.1:" .. tostring(port)
local copts = {ca_file = certs .. "/ca.pem"}
local c
test("server started", function() assert(port and port > 0, "server did not print its port") end)
if port then
  c = rpcnet.connect(addr, copts)
  test("unary call with values", function()
    eq(c:call("add", {a = 1, b = 2}).sum, 3)
    eq(c:call("add", {a = 1.5, b = 2}).sum, 3.5)
    local v = c:call("echo", {list = rpcnet.array{}, m = rpcnet.map{}, n = rpcnet.null, f = 1.0, i = 1,
                              b = rpcnet.bytes("\0\255"), big = rpcnet.int("18446744073709551615")})
    assert(rpcnet.is_array(v.list)); assert(rpcnet.is_map(v.m)); eq(v.n, rpcnet.null)
    eq(math.type(v.f), "float"); eq(math.type(v.i), "integer"); eq(v.b:value(), "\0\255")
    eq(tostring(v.big), "18446744073709551615")
  end)
  test("call_raw: binary safe, empty, 16 MiB", function()
    eq(c:call_raw("echo_raw", "a\0b\0"), "a\0b\0")
    eq(c:call_raw("echo_raw", ""), "")
    local big = string.rep("x\0", 8 * 1024 * 1024 - 64)
    local r = c:call_raw("echo_raw", big, {timeout = 20})
    eq(#r, #big); eq(r == big, true)
  end)
  test("message over max_message_size: RESOURCE_EXHAUSTED", function()
    raises(function() c:call_raw("echo_raw", string.rep("y", 16 * 1024 * 1024 + 1)) end, "RESOURCE_EXHAUSTED")
  end)
  test("handler errors: rpcnet error value, other error, bad answer", function()
    local e = raises(function() c:call("fail", 7) end, "NOT_FOUND")
    eq(e.code, 5); eq(e.message, "no such thing: 7")
    assert(tostring(e):find("NOT_FOUND") and tostring(e):find("no such thing"))
    e = raises(function() c:call("boom", 1) end, "INTERNAL")
    assert(e.message:find("kaboom"), e.message)
    raises(function() c:call("bad_answer", 1) end, "INTERNAL")
  end)
  test("unknown method: UNIMPLEMENTED", function()
    local e = raises(function() c:call("nope", 1) end, "UNIMPLEMENTED")
    assert(e.message:find("nope"), e.message)
  end)
  test("bad request CBOR: INVALID_ARGUMENT", function()
    raises(function() c:call_raw("add", "\xff") end, "INVALID_ARGUMENT")
  end)
  test("timeout: DEADLINE_EXCEEDED, server keeps serving", function()
    local t0 = rpcnet.monotonic()
    local e = raises(function() c:call("sleep", 5, {timeout = 0.3}) end)
    -- Known C library race (see bindings/lua/README.md): the server's reset
    -- at its own deadline sometimes arrives before the client's timer
    -- fires, and the client then reports CANCELLED.
    if e.name == "CANCELLED" and e.message == "server cancelled the call" then
      io.stdout:write("note: deadline reported as CANCELLED (known C library race)\n")
    else
      eq(e.name, "DEADLINE_EXCEEDED")
    end
    local dt = rpcnet.monotonic() - t0
    assert(dt >= 0.25 and dt < 2, "elapsed " .. dt)
    eq(c:call("sleep", 0.05, {timeout = 2}), "slept")
    eq(c:call("add", {a = 2, b = 2}).sum, 4)
  end)
  test("metadata, peer, deadline, trailers", function()
    local v, tr = c:call("meta", 0, {timeout = 2.5, metadata = {authorization = "Bearer t0k"},
                                     trailers = {"x-trace", "blob-bin", "missing"}})
    eq(v.auth, "Bearer t0k"); assert(v.peer:match("^127%.0%.0%.1:%d+"), v.peer)
    eq(v.has_deadline, true); assert(v.deadline > 1 and v.deadline <= 2.5, v.deadline)
    eq(v.cancelled, false); eq(v.method, "meta")
    eq(tr["x-trace"], "abc"); eq(tr["blob-bin"], "\0\1\2"); eq(tr.missing, nil)
  end)
  test("metadata and trailers as plain tables (pairs)", function()
    local md = {["x-a"] = "1", ["x-b-bin"] = "\0\255", ["x-c"] = "three"}
    local v, tr = c:call("md_all", {["t-text"] = "v", ["t-blob-bin"] = rpcnet.bytes("\0\1")},
                         {metadata = md, trailers = true})
    eq(v.plain, true, "ctx.metadata is a plain table")
    local n = 0
    for k, want in pairs(md) do
      local got = v.md[k]
      if k:sub(-4) == "-bin" then got = got:value() end
      eq(got, want, "metadata " .. k)
      n = n + 1
    end
    assert(v.n >= n, "every entry listed")
    eq(getmetatable(tr), nil, "trailers are a plain table")
    local keys = {}
    for k, val in pairs(tr) do keys[#keys + 1] = k; eq(type(val), "string") end
    table.sort(keys)
    eq(table.concat(keys, ","), "t-blob-bin,t-text")
    eq(tr["t-text"], "v"); eq(tr["t-blob-bin"], "\0\1")
    -- a list of keys still picks those
    local _, tr2 = c:call("md_all", {["t-text"] = "w"}, {trailers = {"t-text", "nope"}})
    eq(tr2["t-text"], "w"); eq(tr2.nope, nil)
    -- call objects: .trailers empty until the end, then every trailer
    local s <close> = c:bidi("chat", {timeout = 5})
    eq(next(s.trailers), nil)
    s:send("x"); eq(s:recv().echo, "x"); s:close_send()
    for _ in s:messages() do end
    n = 0
    for k, val in pairs(s.trailers) do n = n + 1; eq(k, "done"); eq(val, "yes") end
    eq(n, 1)
  end)
  test("a slow reader does not block the serve loop (send waits on the send fd)", function()
    local size, count = 64 * 1024, 200 -- 12.5 MiB: far past what the client buffers
    local s <close> = c:server_stream("flood", {n = count, size = size}, {timeout = 30})
    eq(#s:recv_raw(), size)
    rpcnet.sleep(0.5) -- read nothing: the handler fills the window and waits
    local c2 <close> = rpcnet.connect(addr, copts)
    for _, cl in ipairs({c2, c}) do -- another connection, and the same one
      local t0 = rpcnet.monotonic()
      eq(cl:call("add", {a = 1, b = 2}, {timeout = 5}).sum, 3)
      local st <close> = cl:server_stream("countdown", 2, {timeout = 5})
      eq(st(), 2); eq(st(), 1); eq(st(), nil)
      local dt = rpcnet.monotonic() - t0
      assert(dt < 1, "other calls waited " .. dt .. " s behind the slow reader")
    end
    local got = 1
    while true do
      local m = s:recv_raw()
      if m == nil then break end
      got = got + 1
      eq(#m, size); eq(m:byte(1), got % 256)
    end
    eq(got, count); eq(s.status, 0); eq(s.trailers.sent, tostring(count))
    assert(tonumber(s.trailers.seconds) >= 0.4, "the handler did wait for the reader")
  end)
  test("client send under backpressure: explicit timeout, then the call's deadline", function()
    local size, cap = 64 * 1024, 1024 -- at most 64 MiB
    local chunk = string.rep("y", size)
    local s <close> = c:bidi("slow_sink", {timeout = 10})
    s:send({delay = 1.0})
    local sent, ok, why = 0, nil, nil
    local t0 = rpcnet.monotonic()
    repeat
      local t1 = rpcnet.monotonic()
      ok, why = s:send_raw(chunk, 0.2)
      if ok then sent = sent + 1 else
        local waited = rpcnet.monotonic() - t1
        assert(waited >= 0.15 and waited < 0.8, "a 0.2 s send waited " .. waited)
      end
    until not ok or sent >= cap
    eq(why, "WOULD_BLOCK", "send with a timeout under backpressure")
    assert(sent < cap and rpcnet.monotonic() - t0 < 1.0, "the window filled and send(timeout) returned")
    -- without a timeout send waits for the reader (within the call's deadline)
    for _ = 1, 4 do eq(s:send_raw(chunk), true); sent = sent + 1 end
    s:close_send()
    local r = s:recv()
    eq(r.n, sent, "messages received"); eq(r.bytes, sent * size, "bytes received")
    eq(s:recv(), nil); eq(s.status, 0)
    -- a reader that never comes: the call's deadline ends the wait
    local s2 <close> = c:bidi("slow_sink", {timeout = 1})
    s2:send({delay = 30})
    t0 = rpcnet.monotonic()
    local e = raises(function() for _ = 1, cap do s2:send_raw(chunk) end end)
    if e.name == "CANCELLED" and e.message == "server cancelled the call" then
      io.stdout:write("note: deadline reported as CANCELLED (known C library race)\n")
    else
      eq(e.name, "DEADLINE_EXCEEDED")
    end
    local dt = rpcnet.monotonic() - t0
    assert(dt > 0.5 and dt < 3, "blocked send ended after " .. dt .. " s")
  end)
  test("client calls inside a serve() handler yield to the loop (peer in the same Lua state)", function()
    -- One Lua state: server A, its handler "pump" streams 8 MiB to A's own
    -- "sink", which reads nothing for 0.5 s. A send that blocked the state
    -- would stop the loop, so sink would never read: DEADLINE_EXCEEDED.
    local A <close> = rpcnet.server{cert_file = certs .. "/server.pem", key_file = certs .. "/server-key.pem"}
    local pa = A:listen("127.0.0.1:0")
    local size, count = 64 * 1024, 128
    local sent, sent_when_read = 0, nil
    A:handle_stream("sink", function(stream)
      rpcnet.sleep(0.5)
      sent_when_read = sent
      local n, bytes = 0, 0
      while true do
        local m = stream:recv_raw()
        if m == nil then break end
        n, bytes = n + 1, bytes + #m
      end
      stream:send({n = n, bytes = bytes})
    end)
    A:handle("add", function(req) return {sum = req.a + req.b} end)
    local inner <close> = rpcnet.connect("127.0.0.1:" .. pa, copts)
    A:handle("pump", function()
      local s <close> = inner:bidi("sink", {timeout = 8})
      local chunk = string.rep("x", size)
      for i = 1, count do s:send_raw(chunk); sent = i end
      s:close_send()
      local r = s:recv()
      eq(s:recv(), nil)
      -- a unary call to this same server from inside the handler
      return {n = r.n, bytes = r.bytes, sum = inner:call("add", {a = 2, b = 3}, {timeout = 5}).sum}
    end)
    local outer <close> = rpcnet.connect("127.0.0.1:" .. pa, copts)
    local call <close> = outer:bidi("pump", {timeout = 10})
    call:send(0); call:close_send() -- small: never blocks
    local res
    local t0 = rpcnet.monotonic()
    while not res and rpcnet.monotonic() - t0 < 10 do
      A:step(10)
      res = call:recv(0)
    end
    assert(res, "pump did not answer")
    eq(res.n, count); eq(res.bytes, count * size); eq(res.sum, 5)
    assert(sent_when_read and sent_when_read < count,
           "backpressure: the pump waited for the reader (" .. tostring(sent_when_read) .. " sent when it began)")
    A:shutdown(0)
  end)
  test("server streaming with an iterator", function()
    local got = {}
    for m in c:server_stream("countdown", 3) do got[#got + 1] = m end
    eq(table.concat(got, ","), "3,2,1")
    local s <close> = c:server_stream("countdown", 2)
    local n = 0
    for _ in s do n = n + 1 end
    eq(n, 2); eq(s.status, 0); eq(s:trailer("count"), "2")
  end)
  test("client streaming: list and iterator", function()
    eq(c:client_stream("sum", {1, 2, 3, 4}), 10)
    local i = 0
    eq(c:client_stream("sum", function() i = i + 1; if i <= 100 then return i end end), 5050)
    eq(c:client_stream("sum", {}), 0)
  end)
  test("bidi: send, close_send, messages, status, trailer", function()
    local s <close> = c:bidi("chat", {timeout = 5})
    s:send("hi")
    eq(s:recv().echo, "hi")
    s:send("there")
    s:close_send()
    local got = {}
    for m in s:messages() do got[#got + 1] = m.echo end
    eq(table.concat(got, ","), "there"); eq(s.status, 0); eq(s:trailer("done"), "yes")
  end)
  test("bidi: server error status raised at the end", function()
    local s <close> = c:bidi("chat")
    s:send("fail")
    s:close_send()
    local e = raises(function() for _ in s:messages() do end end, "ABORTED")
    eq(e.message, "asked to fail"); eq(s.status, rpcnet.status.ABORTED)
  end)
  test("two streams served concurrently (handler coroutines)", function()
    local a <close> = c:bidi("chat", {timeout = 5})
    local b <close> = c:bidi("chat", {timeout = 5})
    a:send("a1"); b:send("b1")
    eq(b:recv().echo, "b1"); eq(a:recv().echo, "a1")
    b:send("b2"); eq(b:recv().echo, "b2")
    -- a unary call goes through while both handlers wait
    eq(c:call("add", {a = 1, b = 1}).sum, 2)
    a:close_send(); b:close_send()
    eq(a:recv(), nil); eq(b:recv(), nil)
  end)
  test("cancel a call", function()
    local s <close> = c:bidi("chat")
    s:send("x"); eq(s:recv().echo, "x")
    s:cancel()
    raises(function() s:recv() end, "CANCELLED")
  end)
  test("use after close: clear errors, no crash", function()
    local c2 = rpcnet.connect(addr, copts)
    local s = c2:bidi("chat")
    c2:close()
    c2:close() -- harmless
    eq(c2:closed(), true)
    local e = raises(function() c2:call("add", {a = 1, b = 1}) end, "FAILED_PRECONDITION")
    assert(e.message:find("closed"), e.message)
    raises(function() s:send("x") end, "FAILED_PRECONDITION") -- its calls closed with it
    s:close()
    raises(function() s:recv() end, "FAILED_PRECONDITION")
    do local c3 <close> = rpcnet.connect(addr, copts); eq(c3:call("add", {a = 2, b = 3}).sum, 5) end
    local c4 = rpcnet.connect(addr, copts); c4 = nil; collectgarbage(); collectgarbage() -- __gc
  end)
  test("connect failures: wrong CA, nothing listening", function()
    local e = raises(function() rpcnet.connect(addr, {ca_file = certs .. "/other-ca.pem"}) end, "UNAVAILABLE")
    assert(e.message ~= "", "message says why")
    raises(function() rpcnet.connect("127.0.0.1:1", {ca_file = certs .. "/ca.pem", handshake_timeout_ms = 300}) end)
    raises(function() rpcnet.connect(addr, {no_such_key = 1}) end, "INVALID_ARGUMENT")
  end)
  test("server config errors", function()
    raises(function() rpcnet.server{cert_file = "/nonexistent.pem", key_file = "/nonexistent.pem"} end)
    local s = rpcnet.server{cert_file = certs .. "/server.pem", key_file = certs .. "/server-key.pem"}
    local p = s:listen("127.0.0.1:0"); assert(p > 0)
    raises(function() s:listen("127.0.0.1:0") end, "INVALID_ARGUMENT")
    s:shutdown(0); s:close()
    raises(function() s:port() end, "FAILED_PRECONDITION")
  end)
  test("shutdown via a handler; serve returns", function()
    eq(c:call("shutdown", 0), true)
  end)
  c:close()
end
srv_proc:close()

---------------------------------------------------------------------------
-- Cluster: nodes in this state, then worker processes (tests/cluster.lua)
---------------------------------------------------------------------------
local build = os.getenv("RPCNET_BUILD_DIR")
if not build then
  local so = package.searchpath("_rpcnet_c", package.cpath) or ""
  build = so:match("^(.*)/bindings/lua/[^/]*$") or (root .. "/build")
end
dofile(here .. "/cluster.lua"){test = test, eq = eq, raises = raises, certs = certs, root = root,
                                build = build, lua = lua}

io.stdout:write(passed, " passed, ", failed, " failed\n")
os.exit(failed == 0 and 0 or 1)
