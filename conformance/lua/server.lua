-- rpcnet conformance server (Lua 5.4), conformance/README.md and
-- docs/wire-format.md section 8.1.
--   lua5.4 conformance/lua/server.lua CERT_FILE KEY_FILE
-- with LUA_CPATH='BUILD/bindings/lua/?.so;;' LUA_PATH='bindings/lua/?.lua;;'
-- and RPCNET_VECTORS=conformance/vectors/values.json (for EchoValue).
-- Listens on 127.0.0.1:0, prints "PORT <n>", serves until killed.
local rpcnet = require("rpcnet")

local cert, key = arg[1], arg[2]
if not cert or not key then
  io.stderr:write("usage: server.lua CERT_FILE KEY_FILE\n")
  os.exit(2)
end

local here = (arg[0]):match("^(.*)/[^/]*$") or "."
local common = dofile(here .. "/common.lua")
local function load_json() return common.load_json(here) end
local unhex, hex = common.unhex, common.hex

-- name -> canonical bytes, loaded lazily from $RPCNET_VECTORS.
local vectors
local function canonical_of(name)
  if not vectors then
    local path = os.getenv("RPCNET_VECTORS")
    if not path or path == "" then
      error(rpcnet.error("FAILED_PRECONDITION", "RPCNET_VECTORS is not set"))
    end
    local f = io.open(path, "rb")
    if not f then error(rpcnet.error("FAILED_PRECONDITION", "cannot open RPCNET_VECTORS " .. path)) end
    local doc = load_json().decode(f:read("a"))
    f:close()
    vectors = {}
    for _, v in ipairs(doc.vectors) do
      vectors[v.name] = {canon = unhex(v.canonical or v.hex), error = v.error,
                         lua_error = v.binding_errors and v.binding_errors.lua}
    end
  end
  return vectors[name]
end

-- payload of n bytes: byte i is i % 251
local base = {}
for i = 0, 250 do base[#base + 1] = string.char(i) end
base = table.concat(base)
local pattern_cache = {}
local function pattern(n)
  local p = pattern_cache[n]
  if p then return p end
  p = string.rep(base, n // 251 + 1):sub(1, n)
  pattern_cache[n] = p
  return p
end

local function want_size(v, what)
  if math.type(v) ~= "integer" or v < 0 then
    error(rpcnet.error("INVALID_ARGUMENT", what .. ": unsigned integer expected, got " .. tostring(v)))
  end
  return v
end
-- Checks an optional request payload: a byte string following the pattern.
local function check_payload(p)
  if p == nil then return 0 end
  if not rpcnet.is_bytes(p) then
    error(rpcnet.error("INVALID_ARGUMENT", "payload: byte string expected, got " .. type(p)))
  end
  local s = p:value()
  if s ~= pattern(#s) then
    error(rpcnet.error("INVALID_ARGUMENT", "payload of " .. #s .. " bytes does not follow the i % 251 pattern"))
  end
  return #s
end
local function payload_msg(n) return rpcnet.map{payload = rpcnet.bytes(pattern(n))} end
local function field(req, k)
  if not rpcnet.is_map(req) and type(req) ~= "table" then
    error(rpcnet.error("INVALID_ARGUMENT", "request: map expected"))
  end
  return req[k]
end

local debug_log = os.getenv("RPCNET_CONF_DEBUG") and function(...)
  io.stderr:write("server.lua: ", ...); io.stderr:write("\n"); io.stderr:flush()
end or function() end

local s = rpcnet.server{cert_file = cert, key_file = key}

s:handle("conformance.Empty", function() return rpcnet.map{} end)

s:handle("conformance.Unary", function(req)
  local status = field(req, "status")
  check_payload(field(req, "payload"))
  if status ~= nil and status ~= 0 then
    local msg = field(req, "message")
    error(rpcnet.error(want_size(status, "status"), msg ~= nil and tostring(msg) or ""))
  end
  return payload_msg(want_size(field(req, "size"), "size"))
end)

s:handle_stream("conformance.ClientStream", function(stream)
  local total = 0
  for m in stream:messages() do total = total + check_payload(field(m, "payload")) end
  stream:send(rpcnet.map{aggregate = total})
end)

s:handle_stream("conformance.ServerStream", function(stream)
  local req = stream:recv()
  if req == nil then error(rpcnet.error("INVALID_ARGUMENT", "no request")) end
  local sizes = field(req, "sizes")
  if type(sizes) ~= "table" then error(rpcnet.error("INVALID_ARGUMENT", "sizes: array expected")) end
  for _, n in ipairs(sizes) do stream:send(payload_msg(want_size(n, "size"))) end
end)

s:handle_stream("conformance.Bidi", function(stream)
  for m in stream:messages() do
    check_payload(field(m, "payload"))
    stream:send(payload_msg(want_size(field(m, "size"), "size")))
  end
end)

-- Sleeps (yielding, so other calls go on) until t ms passed, the call was
-- cancelled or its deadline passed.
s:handle("conformance.Sleep", function(req, ctx)
  local ms = want_size(field(req, "ms"), "ms")
  local t0 = rpcnet.monotonic()
  local wake = t0 + ms / 1000
  while true do
    if ctx:cancelled() then
      local left = ctx:time_remaining()
      debug_log(string.format("Sleep %d ms: ended early after %.1f ms (cancelled, time remaining %s)",
        ms, (rpcnet.monotonic() - t0) * 1000, tostring(left)))
      if left ~= nil and left <= 0 then error(rpcnet.error("DEADLINE_EXCEEDED", "deadline passed while sleeping")) end
      error(rpcnet.error("CANCELLED", "cancelled while sleeping"))
    end
    local left = wake - rpcnet.monotonic()
    if left <= 0 then break end
    rpcnet.sleep(math.min(left, 0.01))
  end
  return rpcnet.map{}
end)

s:handle_raw("conformance.EchoValue", function(data, ctx)
  local name = ctx:get_metadata("x-vector")
  if name == nil then error(rpcnet.error("INVALID_ARGUMENT", "metadata x-vector missing")) end
  local vec = canonical_of(name)
  if vec == nil then error(rpcnet.error("NOT_FOUND", "no vector named " .. name)) end
  if vec.error then error(rpcnet.error("INVALID_ARGUMENT", "vector " .. name .. " is an error vector")) end
  local canon = vec.canon
  if data ~= canon then
    error(rpcnet.error("DATA_LOSS", "vector " .. name .. ": received bytes " .. hex(data) ..
      " differ from the canonical " .. hex(canon)))
  end
  local ok, v = pcall(rpcnet.decode, data)
  if not ok then
    if vec.lua_error and rpcnet.is_error(v) and v.kind == vec.lua_error then
      -- A value outside what Lua can hold (spec 7.3, binding_errors): the
      -- documented binding limit, not a wire mismatch.
      error(rpcnet.error("UNIMPLEMENTED", "vector " .. name .. ": the lua binding cannot decode it (binding_errors: " ..
        v.kind .. ")"))
    end
    error(rpcnet.error("DATA_LOSS", "vector " .. name .. ": decode failed: " .. tostring(v)))
  end
  local ok2, again = pcall(rpcnet.encode, v)
  if not ok2 then error(rpcnet.error("DATA_LOSS", "vector " .. name .. ": re-encode failed: " .. tostring(again))) end
  if again ~= canon then
    error(rpcnet.error("DATA_LOSS", "vector " .. name .. ": re-encoded bytes " .. hex(again) ..
      " differ from the canonical " .. hex(canon)))
  end
  return again
end)

s:handle("conformance.EchoMetadata", function(_, ctx)
  for k, v in pairs(ctx.metadata) do ctx:set_trailer(k, v) end
  return rpcnet.map{}
end)

local port = s:listen("127.0.0.1:0")
io.stdout:write("PORT ", tostring(port), "\n")
io.stdout:flush()
s:serve()
s:close()
