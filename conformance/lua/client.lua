-- rpcnet conformance client driver (Lua 5.4), conformance/README.md and
-- docs/wire-format.md section 8.1.
--   lua5.4 conformance/lua/client.lua --ca CA_FILE --addr HOST:PORT \
--     --vectors VALUES_JSON [--case NAME]...
-- with LUA_CPATH='BUILD/bindings/lua/?.so;;' LUA_PATH='bindings/lua/?.lua;;'.
-- Prints one JSON object per case: {"case": ..., "ok": ..., "ms": ...[, "error": ...]}.
local rpcnet = require("rpcnet")

local function usage(msg)
  io.stderr:write("client.lua: ", msg, "\nusage: client.lua --ca CA_FILE --addr HOST:PORT --vectors VALUES_JSON [--case NAME]...\n")
  os.exit(2)
end

local ca, addr, vectors_path, only = nil, nil, nil, {}
do
  local i = 1
  while i <= #arg do
    local a = arg[i]
    local v = arg[i + 1]
    if a == "--ca" then ca = v
    elseif a == "--addr" then addr = v
    elseif a == "--vectors" then vectors_path = v
    elseif a == "--case" then only[#only + 1] = v
    else usage("unknown argument " .. a) end
    if v == nil then usage(a .. " needs a value") end
    i = i + 2
  end
end
if not ca or not addr then usage("--ca and --addr are required") end

local here = (arg[0]):match("^(.*)/[^/]*$") or "."
local common = dofile(here .. "/common.lua")
local function load_json() return common.load_json(here) end
local unhex, hex = common.unhex, common.hex

-- JSON output -------------------------------------------------------------
local function jstr(s)
  s = tostring(s)
  if not utf8.len(s) then -- keep the output valid JSON
    s = s:gsub("[\128-\255]", function(c) return string.format("\\x%02x", c:byte()) end)
  end
  return '"' .. s:gsub('[%c"\\]', function(c)
    if c == '"' then return '\\"' elseif c == "\\" then return "\\\\"
    elseif c == "\n" then return "\\n" elseif c == "\r" then return "\\r" elseif c == "\t" then return "\\t"
    else return string.format("\\u%04x", c:byte()) end
  end) .. '"'
end

-- Helpers -----------------------------------------------------------------
local TIMEOUT = 10 -- seconds per call
local base = {}
for i = 0, 250 do base[#base + 1] = string.char(i) end
base = table.concat(base)
local function pattern(n) return string.rep(base, n // 251 + 1):sub(1, n) end
local function payload(n) return rpcnet.bytes(pattern(n)) end

local function fail(msg) error(msg, 0) end
local function check(cond, msg) if not cond then fail(msg) end end
local function describe(e)
  if rpcnet.is_error(e) then return tostring(e) end
  return tostring(e)
end
-- Checks a message {"payload": n bytes following the pattern}.
local function check_payload_msg(m, n, what)
  check(type(m) == "table" and rpcnet.is_map(m), what .. ": map expected, got " .. tostring(m))
  local p = m.payload
  check(rpcnet.is_bytes(p), what .. ": payload is not a byte string: " .. tostring(p))
  local s = p:value()
  check(#s == n, what .. ": payload of " .. #s .. " bytes, expected " .. n)
  check(s == pattern(n), what .. ": payload bytes do not follow the i % 251 pattern")
  for k in pairs(m) do check(k == "payload", what .. ": unexpected key " .. tostring(k)) end
end
-- Runs fn, which must fail with status `name` (and message `msg` if given).
local function expect_status(fn, name, msg)
  local ok, e = pcall(fn)
  check(not ok, "expected status " .. name .. ", the call succeeded")
  check(rpcnet.is_error(e), "expected status " .. name .. ", got a Lua error: " .. tostring(e))
  check(e.name == name, "expected status " .. name .. ", got " .. tostring(e))
  if msg ~= nil then
    check(e.message == msg, "status message " .. jstr(e.message) .. ", expected " .. jstr(msg))
  end
end
local function check_empty_map(v, what)
  check(type(v) == "table" and rpcnet.is_map(v) and next(v) == nil, what .. ": expected {}, got " .. tostring(v))
end

-- A failed connect fails every case with its reason (a later case retries).
local c
local function connect()
  if c then return c end
  c = rpcnet.connect(addr, {ca_file = ca})
  return c
end

-- Cases (docs/wire-format.md 8.1) -------------------------------------------
local cases, order = {}, {}
local note -- set by a case that passed with a remark
local function case(name, fn) cases[name] = fn; order[#order + 1] = name end

case("empty_unary", function()
  local raw = c:call_raw("conformance.Empty", rpcnet.encode(rpcnet.map{}), {timeout = TIMEOUT})
  check(raw == "\xa0", "answer " .. hex(raw) .. ", expected a0 ({})")
end)

case("large_unary", function()
  local m = c:call("conformance.Unary", {size = 314159, payload = payload(271828)}, {timeout = TIMEOUT})
  check_payload_msg(m, 314159, "answer")
end)

case("client_streaming", function()
  local sizes = {27182, 8, 1828, 45904}
  local msgs = {}
  for i, n in ipairs(sizes) do msgs[i] = rpcnet.map{payload = payload(n)} end
  local m = c:client_stream("conformance.ClientStream", msgs, {timeout = TIMEOUT})
  check(type(m) == "table" and rpcnet.is_map(m), "answer: map expected, got " .. tostring(m))
  check(m.aggregate == 74922, "aggregate " .. tostring(m.aggregate) .. ", expected 74922")
end)

case("server_streaming", function()
  local sizes = {31415, 9, 2653, 58979}
  local call <close> = c:server_stream("conformance.ServerStream", rpcnet.map{sizes = rpcnet.array(sizes)}, {timeout = TIMEOUT})
  local i = 0
  for m in call:messages() do
    i = i + 1
    check(i <= #sizes, "more than " .. #sizes .. " messages")
    check_payload_msg(m, sizes[i], "message " .. i)
  end
  check(i == #sizes, i .. " messages, expected " .. #sizes)
  check(call.status == 0, "status " .. tostring(call.status))
end)

case("ping_pong", function()
  local req = {27182, 8, 1828, 45904}
  local resp = {31415, 9, 2653, 58979}
  local call <close> = c:bidi("conformance.Bidi", {timeout = TIMEOUT})
  for i = 1, #req do
    call:send(rpcnet.map{size = resp[i], payload = payload(req[i])})
    local m = call:recv()
    check(m ~= nil, "stream ended after " .. (i - 1) .. " responses")
    check_payload_msg(m, resp[i], "response " .. i)
  end
  call:close_send()
  local extra = call:recv()
  check(extra == nil, "a message after the last response")
  check(call.status == 0, "status " .. tostring(call.status))
end)

case("empty_stream", function()
  local call <close> = c:bidi("conformance.Bidi", {timeout = TIMEOUT})
  call:close_send()
  local m = call:recv()
  check(m == nil, "a message on an empty stream: " .. tostring(m))
  check(call.status == 0, "status " .. tostring(call.status))
end)

case("cancel_after_begin", function()
  local call <close> = c:bidi("conformance.ClientStream", {timeout = TIMEOUT})
  -- A short receive puts the call on the wire (its header goes out), so
  -- the cancellation below reaches the server.
  call:recv_raw(0.02)
  call:cancel()
  expect_status(function() return call:recv() end, "CANCELLED")
end)

case("cancel_after_first_response", function()
  local call <close> = c:bidi("conformance.Bidi", {timeout = TIMEOUT})
  call:send(rpcnet.map{size = 31415, payload = payload(27182)})
  local m = call:recv()
  check(m ~= nil, "stream ended before the first response")
  check_payload_msg(m, 31415, "response 1")
  call:cancel()
  expect_status(function()
    while call:recv() do end
  end, "CANCELLED")
end)

case("timeout_on_sleeping_server", function()
  expect_status(function() return c:call("conformance.Sleep", rpcnet.map{ms = 5000}, {timeout = 0.1}) end,
    "DEADLINE_EXCEEDED")
end)

case("custom_metadata", function()
  local md = {
    ["x-grpc-test-echo-initial"] = "test_initial_metadata_value",
    ["x-grpc-test-echo-trailing-bin"] = "\xab\xab\xab",
  }
  local v, tr = c:call("conformance.EchoMetadata", rpcnet.map{}, {timeout = TIMEOUT, metadata = md, trailers = true})
  check_empty_map(v, "answer")
  for k, want in pairs(md) do
    local got = tr[k]
    check(got ~= nil, "trailer " .. k .. " missing")
    check(got == want, "trailer " .. k .. " is " .. hex(got) .. ", expected " .. hex(want))
  end
end)

case("status_code_and_message", function()
  expect_status(function()
    return c:call("conformance.Unary", rpcnet.map{size = 0, payload = payload(0), status = 2, message = "test status message"},
      {timeout = TIMEOUT})
  end, "UNKNOWN", "test status message")
end)

case("special_status_message", function()
  local msg = "\t\ntest with whitespace\r\nand Unicode BMP \u{263A} and non-BMP \u{1F608}\t\n"
  expect_status(function()
    return c:call("conformance.Unary", rpcnet.map{size = 0, payload = payload(0), status = 2, message = msg},
      {timeout = TIMEOUT})
  end, "UNKNOWN", msg)
end)

case("unimplemented_method", function()
  expect_status(function() return c:call_raw("conformance.NoSuchMethod", rpcnet.encode(rpcnet.map{}), {timeout = TIMEOUT}) end,
    "UNIMPLEMENTED")
end)

-- frames: the byte-level proof, against conformance_record_server only (run
-- when named: --case frames). The request of frames.json vectors
-- request_header_timeout_metadata + unary_request; the recorder answers OK
-- when the bytes it received match.
cases["frames"] = function()
  c:call_raw("/echo.Echo/Say", "hello", {timeout = TIMEOUT,
    metadata = {authorization = "Bearer abc", ["trace-bin"] = "\1\2\255"}})
end

-- value:NAME, one per vector the Lua binding can encode
if vectors_path then
  local f = io.open(vectors_path, "rb")
  if not f then usage("cannot open " .. vectors_path) end
  local doc = load_json().decode(f:read("a"))
  f:close()
  for _, vec in ipairs(doc.vectors) do
    if not vec.error and not (vec.binding_errors and vec.binding_errors.lua) then
      local canon = unhex(vec.canonical or vec.hex)
      local limited = vec.binding_errors ~= nil and next(vec.binding_errors) ~= nil
      case("value:" .. vec.name, function()
        local ok, v = pcall(rpcnet.decode, canon)
        check(ok, "decode of the canonical bytes failed: " .. describe(v))
        local ok2, enc = pcall(rpcnet.encode, v)
        check(ok2, "re-encode failed: " .. describe(enc))
        check(enc == canon, "re-encoded bytes " .. hex(enc) .. " differ from the canonical " .. hex(canon))
        local okc, resp = pcall(c.call_raw, c, "conformance.EchoValue", enc,
          {timeout = TIMEOUT, metadata = {["x-vector"] = vec.name}})
        if not okc then
          -- A vector whose binding_errors name some language: a server in
          -- that language cannot decode it and answers UNIMPLEMENTED (as
          -- the Python, Go and Lua servers do); accepted, with a note.
          if limited and rpcnet.is_error(resp) and resp.name == "UNIMPLEMENTED" then
            note = "server's binding cannot decode this vector (binding_errors): " .. tostring(resp)
            return
          end
          error(resp, 0)
        end
        check(resp == canon, "echoed bytes " .. hex(resp) .. " differ from the canonical " .. hex(canon))
        local ok3, e = pcall(rpcnet.decode, resp)
        check(ok3, "echoed bytes do not decode: " .. describe(e))
      end)
    end
  end
end

-- Run -------------------------------------------------------------------
local selected = order
if #only > 0 then selected = only end
for _, name in ipairs(selected) do
  local fn = cases[name]
  local t0 = rpcnet.monotonic()
  local ok, err
  note = nil
  if fn then
    ok, err = pcall(connect)
    if ok then ok, err = pcall(fn) end
  else
    ok, err = false, "unknown case"
  end
  local ms = (rpcnet.monotonic() - t0) * 1000
  local line = string.format('{"case": %s, "ok": %s, "ms": %.1f', jstr(name), ok and "true" or "false", ms)
  if not ok then line = line .. ", \"error\": " .. jstr(describe(err)) end
  if ok and note then line = line .. ", \"note\": " .. jstr(note) end
  io.stdout:write(line, "}\n")
  io.stdout:flush()
end
if c then c:close() end
os.exit(0)
