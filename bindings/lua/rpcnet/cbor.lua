-- rpcnet.cbor: the value mapping of docs/wire-format.md section 7 for Lua
-- 5.4, in pure Lua. encode(v) -> string (core deterministic CBOR);
-- decode(s) -> value. Failures raise the error value made by the `raise`
-- function given to init (rpcnet.Error with kind = the spec's error name).
local M = {}

local spack, sunpack, sbyte, ssub, schar = string.pack, string.unpack, string.byte, string.sub, string.char
local mtype, ult = math.type, math.ult
local concat = table.concat
local utf8len = utf8.len

local MAX_DEPTH = 64
M.max_depth = MAX_DEPTH

local raise = function(kind, msg) error(kind .. ": " .. msg, 0) end
function M.init(f) raise = f end

---------------------------------------------------------------------------
-- Marker types
---------------------------------------------------------------------------
local Null = setmetatable({}, {__name = "rpcnet.null", __tostring = function() return "rpcnet.null" end})
M.null = Null

local Bytes = {__name = "rpcnet.bytes"}
Bytes.__index = {value = function(self) return self[1] end, len = function(self) return #self[1] end}
Bytes.__tostring = function(self) return self[1] end
Bytes.__len = function(self) return #self[1] end
Bytes.__eq = function(a, b) return a[1] == b[1] end
Bytes.__newindex = function() error("rpcnet.bytes is immutable", 2) end
-- Interned: equal byte strings are the same object, so they work as keys.
local bytes_cache = setmetatable({}, {__mode = "v"})
function M.bytes(s)
  if getmetatable(s) == Bytes then return s end
  if type(s) ~= "string" then error("rpcnet.bytes: string expected, got " .. type(s), 2) end
  local o = bytes_cache[s]
  if not o then
    o = setmetatable({s}, Bytes)
    bytes_cache[s] = o
  end
  return o
end
function M.is_bytes(v) return getmetatable(v) == Bytes end

-- Integers outside int64: sign (false: >= 0) and magnitude as uint64 bits.
-- For negatives the stored value n is the CBOR argument (value = -1 - n).
local Int = {__name = "rpcnet.int"}
Int.__tostring = function(self) return self.decimal end
Int.__eq = function(a, b) return a.decimal == b.decimal end
Int.__index = {value = function(self) return self.decimal end}
local int_cache = setmetatable({}, {__mode = "v"})

local function u64_decimal(n) return string.format("%u", n) end
-- Adds one to a decimal digit string.
local function dec_inc(s)
  local i = #s
  local out = {}
  local carry = 1
  while i >= 1 do
    local d = sbyte(s, i) - 48 + carry
    if d == 10 then d, carry = 0, 1 else carry = 0 end
    out[i] = schar(48 + d)
    i = i - 1
  end
  local r = concat(out)
  if carry == 1 then r = "1" .. r end
  return r
end
local function dec_dec(s) -- subtracts one from a positive decimal digit string
  local out = {}
  local borrow = 1
  for i = #s, 1, -1 do
    local d = sbyte(s, i) - 48 - borrow
    if d < 0 then d, borrow = 9, 1 else borrow = 0 end
    out[i] = schar(48 + d)
  end
  local r = concat(out):gsub("^0+(%d)", "%1")
  return r
end
-- Parses a decimal digit string to uint64 bits, or nil on overflow.
local function parse_u64(s)
  local acc = 0
  for i = 1, #s do
    local d = sbyte(s, i) - 48
    -- acc * 10 + d must stay <= 2^64-1
    if ult(1844674407370955161, acc) or (acc == 1844674407370955161 and d > 5) then return nil end
    acc = acc * 10 + d
  end
  return acc
end

local function make_int(neg, n)
  -- canonical: int64 range gives a plain Lua integer
  if not neg and n >= 0 then return n end
  if neg and n >= 0 then return -1 - n end
  local dec = neg and ("-" .. dec_inc(u64_decimal(n))) or u64_decimal(n)
  local o = int_cache[dec]
  if not o then
    o = setmetatable({neg = neg, n = n, decimal = dec}, Int)
    int_cache[dec] = o
  end
  return o
end

-- rpcnet.int("<decimal>"): any integer in [-2^64, 2^64-1]. Values in int64
-- come back as plain Lua integers.
function M.int(s)
  if mtype(s) == "integer" then return s end
  if getmetatable(s) == Int then return s end
  if type(s) ~= "string" then error("rpcnet.int: decimal string expected", 2) end
  local sign, digits = s:match("^%s*([+-]?)0*(%d+)%s*$")
  if not digits then error("rpcnet.int: not a decimal integer: " .. s, 2) end
  if sign == "-" then
    if digits == "0" then return 0 end
    local n = parse_u64(dec_dec(digits))
    if not n then error("rpcnet.int: below -2^64: " .. s, 2) end
    return make_int(true, n)
  end
  local n = parse_u64(digits)
  if not n then error("rpcnet.int: above 2^64-1: " .. s, 2) end
  return make_int(false, n)
end
function M.is_int(v) return getmetatable(v) == Int end

local Tag = {__name = "rpcnet.tag"}
Tag.__tostring = function(self) return "rpcnet.tag(" .. tostring(self.tag) .. ", " .. tostring(self.value) .. ")" end
-- rpcnet.tag(number, value): number is an integer >= 0 or rpcnet.int for
-- numbers >= 2^63.
function M.tag(n, v)
  if not ((mtype(n) == "integer" and n >= 0) or (getmetatable(n) == Int and not n.neg)) then
    error("rpcnet.tag: tag number must be a non-negative integer", 2)
  end
  return setmetatable({tag = n, value = v}, Tag)
end
function M.is_tag(v) return getmetatable(v) == Tag end

local Array = {__name = "rpcnet.array"}
local Map = {__name = "rpcnet.map"}
function M.array(t) return setmetatable(t or {}, Array) end
function M.map(t) return setmetatable(t or {}, Map) end
function M.is_array(t) return getmetatable(t) == Array end
function M.is_map(t) return getmetatable(t) == Map end

---------------------------------------------------------------------------
-- Encoding
---------------------------------------------------------------------------
local function head(major, n) -- n: uint64 bits (Lua integer)
  local mt = major << 5
  if n >= 0 and n < 24 then return schar(mt | n) end
  if n >= 0 and n < 0x100 then return schar(mt | 24, n) end
  if n >= 0 and n < 0x10000 then return spack(">BI2", mt | 25, n) end
  if n >= 0 and n < 0x100000000 then return spack(">BI4", mt | 26, n) end
  return schar(mt | 27) .. spack(">j", n)
end

-- The binary16 bits of x when x (a finite float32 given by its bits) is
-- exactly representable as binary16, else nil.
local function half_of_f32bits(b)
  local sign = (b >> 16) & 0x8000
  local exp = (b >> 23) & 0xff
  local mant = b & 0x7fffff
  if exp == 0 then
    if mant == 0 then return sign end
    return nil
  end
  local e = exp - 127
  if e >= -14 and e <= 15 then
    if mant & 0x1fff ~= 0 then return nil end
    return sign | ((e + 15) << 10) | (mant >> 13)
  end
  if e >= -24 and e < -14 then
    local full = mant | 0x800000
    local shift = -(e + 1) -- value = full * 2^(e-23) = m * 2^-24 => m = full >> shift
    if full & ((1 << shift) - 1) ~= 0 then return nil end
    return sign | (full >> shift)
  end
  return nil
end

local function encode_float(x)
  if x ~= x then return "\xf9\x7e\x00" end
  if x == math.huge then return "\xf9\x7c\x00" end
  if x == -math.huge then return "\xf9\xfc\x00" end
  if x >= -3.4028234663852886e38 and x <= 3.4028234663852886e38 then
    local s4 = spack(">f", x)
    local y = sunpack(">f", s4)
    if y == x and (x ~= 0 or 1 / x == 1 / y) then
      local h = half_of_f32bits(sunpack(">I4", s4))
      if h then return spack(">BI2", 0xf9, h) end
      return "\xfa" .. s4
    end
  end
  return "\xfb" .. spack(">d", x)
end

local function classify_table(t)
  local mt = getmetatable(t)
  if mt == Array then return "array" end
  if mt == Map then return "map" end
  if mt ~= nil then return nil end
  local n = #t
  if n == 0 then return "map" end
  local count = 0
  for k in next, t do
    if mtype(k) ~= "integer" or k < 1 or k > n then return "map" end
    count = count + 1
  end
  return count == n and "array" or "map"
end

local encode_item
local function encode_into(v, out, depth)
  local tv = type(v)
  if tv == "string" then
    if not utf8len(v) then raise("utf8", "text string is not valid UTF-8 (use rpcnet.bytes for bytes)") end
    out[#out + 1] = head(3, #v)
    out[#out + 1] = v
  elseif tv == "number" then
    if mtype(v) == "integer" then
      if v >= 0 then out[#out + 1] = head(0, v) else out[#out + 1] = head(1, -1 - v) end
    else
      out[#out + 1] = encode_float(v)
    end
  elseif tv == "boolean" then
    out[#out + 1] = v and "\xf5" or "\xf4"
  elseif v == nil or v == Null then
    out[#out + 1] = "\xf6"
  elseif tv == "table" then
    local mt = getmetatable(v)
    if mt == Bytes then
      out[#out + 1] = head(2, #v[1])
      out[#out + 1] = v[1]
    elseif mt == Int then
      out[#out + 1] = head(v.neg and 1 or 0, v.n)
    elseif mt == Tag then
      if depth >= MAX_DEPTH then raise("depth", "more than " .. MAX_DEPTH .. " nested containers") end
      local n = v.tag
      out[#out + 1] = head(6, getmetatable(n) == Int and n.n or n)
      encode_into(v.value, out, depth + 1)
    else
      local kind = classify_table(v)
      if not kind then raise("unsupported", "cannot encode a table with a foreign metatable") end
      if depth >= MAX_DEPTH then raise("depth", "more than " .. MAX_DEPTH .. " nested containers") end
      if kind == "array" then
        local n = #v
        out[#out + 1] = head(4, n)
        for i = 1, n do encode_into(v[i], out, depth + 1) end
      else
        local pairs_ = {}
        for k, val in next, v do
          local kenc = encode_item(k, depth + 1)
          pairs_[#pairs_ + 1] = {kenc, val}
        end
        table.sort(pairs_, function(a, b) return a[1] < b[1] end)
        out[#out + 1] = head(5, #pairs_)
        for i = 1, #pairs_ do
          if i > 1 and pairs_[i][1] == pairs_[i - 1][1] then
            raise("duplicate_key", "two map keys have the same encoding")
          end
          out[#out + 1] = pairs_[i][1]
          encode_into(pairs_[i][2], out, depth + 1)
        end
      end
    end
  else
    raise("unsupported", "cannot encode a " .. tv)
  end
end
encode_item = function(v, depth)
  local out = {}
  encode_into(v, out, depth)
  return concat(out)
end

function M.encode(v) return encode_item(v, 0) end

---------------------------------------------------------------------------
-- Decoding
---------------------------------------------------------------------------
local function half_to_float(h)
  local sign = (h & 0x8000) ~= 0 and -1.0 or 1.0
  local exp = (h >> 10) & 0x1f
  local mant = h & 0x3ff
  local v
  if exp == 0 then
    v = mant * 2.0 ^ -24
  elseif exp == 31 then
    if mant ~= 0 then return 0.0 / 0.0 end
    v = math.huge
  else
    v = (mant + 1024) * 2.0 ^ (exp - 25)
  end
  return sign * v
end

local decode_at
-- Reads a head at pos: returns major, ai, argument (uint64 bits or nil for
-- indefinite), next pos.
local function read_head(s, pos, len)
  if pos > len then raise("truncated", "input ends inside an item") end
  local ib = sbyte(s, pos)
  local major, ai = ib >> 5, ib & 31
  pos = pos + 1
  if ai < 24 then return major, ai, ai, pos end
  if ai == 24 then
    if pos > len then raise("truncated", "input ends inside a head") end
    return major, ai, sbyte(s, pos), pos + 1
  elseif ai == 25 then
    if pos + 1 > len then raise("truncated", "input ends inside a head") end
    return major, ai, sunpack(">I2", s, pos), pos + 2
  elseif ai == 26 then
    if pos + 3 > len then raise("truncated", "input ends inside a head") end
    return major, ai, sunpack(">I4", s, pos), pos + 4
  elseif ai == 27 then
    if pos + 7 > len then raise("truncated", "input ends inside a head") end
    return major, ai, sunpack(">j", s, pos), pos + 8
  elseif ai == 31 then
    return major, ai, nil, pos
  end
  raise("malformed", "reserved additional information " .. ai)
end

-- Does a length claim fit in the remaining input (each item >= per bytes)?
local function check_claim(n, pos, len, per)
  local remaining = len - pos + 1
  if n < 0 or n > remaining // per then raise("truncated", "length claims more than the input holds") end
end

local function read_string(s, pos, len, major, arg)
  if arg == nil then
    local parts = {}
    while true do
      if pos > len then raise("truncated", "indefinite string without break") end
      if sbyte(s, pos) == 0xff then pos = pos + 1 break end
      local m, _, a, p = read_head(s, pos, len)
      if m ~= major or a == nil then raise("malformed", "bad chunk inside an indefinite string") end
      check_claim(a, p, len, 1)
      local chunk = ssub(s, p, p + a - 1)
      if major == 3 and not utf8len(chunk) then raise("utf8", "text chunk is not valid UTF-8") end
      parts[#parts + 1] = chunk
      pos = p + a
    end
    return concat(parts), pos
  end
  check_claim(arg, pos, len, 1)
  local v = ssub(s, pos, pos + arg - 1)
  if major == 3 and not utf8len(v) then raise("utf8", "text string is not valid UTF-8") end
  return v, pos + arg
end

local function lua_key_ok(k)
  if mtype(k) == "float" and (k ~= k or k == math.floor(k)) then
    raise("unsupported", "map key " .. tostring(k) .. " cannot be a Lua table key")
  end
end

decode_at = function(s, pos, len, depth)
  local major, ai, arg, p = read_head(s, pos, len)
  if major == 0 then
    if arg == nil then raise("malformed", "indefinite length on an integer") end
    return make_int(false, arg), p
  elseif major == 1 then
    if arg == nil then raise("malformed", "indefinite length on an integer") end
    return make_int(true, arg), p
  elseif major == 2 then
    local v
    v, p = read_string(s, p, len, 2, arg)
    return M.bytes(v), p
  elseif major == 3 then
    return read_string(s, p, len, 3, arg)
  elseif major == 4 or major == 5 then
    if depth >= MAX_DEPTH then raise("depth", "more than " .. MAX_DEPTH .. " nested containers") end
    if major == 4 then
      local t = setmetatable({}, Array)
      if arg == nil then
        local i = 0
        while true do
          if p > len then raise("truncated", "indefinite array without break") end
          if sbyte(s, p) == 0xff then p = p + 1 break end
          i = i + 1
          local v
          v, p = decode_at(s, p, len, depth + 1)
          t[i] = v
        end
      else
        check_claim(arg, p, len, 1)
        for i = 1, arg do
          local v
          v, p = decode_at(s, p, len, depth + 1)
          t[i] = v
        end
      end
      return t, p
    end
    -- map: collect pairs, check duplicates by canonical key encoding, then
    -- build the Lua table (keys Lua cannot hold fail with `unsupported`).
    local keys, vals, seen = {}, {}, {}
    local count = 0
    local function one()
      local k, v
      k, p = decode_at(s, p, len, depth + 1)
      if p > len then raise("truncated", "map value missing") end
      if sbyte(s, p) == 0xff then raise("malformed", "break in place of a map value") end
      v, p = decode_at(s, p, len, depth + 1)
      local kenc = encode_item(k, depth + 1)
      if seen[kenc] then raise("duplicate_key", "duplicate map key") end
      seen[kenc] = true
      count = count + 1
      keys[count], vals[count] = k, v
    end
    if arg == nil then
      while true do
        if p > len then raise("truncated", "indefinite map without break") end
        if sbyte(s, p) == 0xff then p = p + 1 break end
        one()
      end
    else
      check_claim(arg, p, len, 2)
      for _ = 1, arg do one() end
    end
    local t = setmetatable({}, Map)
    for i = 1, count do
      lua_key_ok(keys[i])
      t[keys[i]] = vals[i]
    end
    return t, p
  elseif major == 6 then
    if arg == nil then raise("malformed", "indefinite length on a tag") end
    if depth >= MAX_DEPTH then raise("depth", "more than " .. MAX_DEPTH .. " nested containers") end
    local v
    v, p = decode_at(s, p, len, depth + 1)
    if arg == 0 then
      if type(v) ~= "string" then raise("invalid_tag", "tag 0 needs a text string") end
    elseif arg == 1 then
      local ok = mtype(v) == "integer" or getmetatable(v) == Int
          or (mtype(v) == "float" and v == v and v ~= math.huge and v ~= -math.huge)
      if not ok then raise("invalid_tag", "tag 1 needs an integer or a finite float") end
    elseif arg == 2 or arg == 3 then
      if getmetatable(v) ~= Bytes then raise("invalid_tag", "tag " .. arg .. " needs a byte string") end
    end
    return setmetatable({tag = make_int(false, arg), value = v}, Tag), p
  else -- major 7
    if ai < 20 then raise("unsupported", "simple value " .. ai) end
    if ai == 20 then return false, p end
    if ai == 21 then return true, p end
    if ai == 22 then return Null, p end
    if ai == 23 then raise("unsupported", "undefined") end
    if ai == 24 then
      if arg < 32 then raise("malformed", "two-byte simple value below 32") end
      raise("unsupported", "simple value " .. arg)
    end
    if ai == 25 then return half_to_float(arg), p end
    if ai == 26 then return (sunpack(">f", spack(">I4", arg))), p end
    if ai == 27 then return (sunpack(">d", spack(">j", arg))), p end
    raise("malformed", "break outside an indefinite container")
  end
end

function M.decode(s)
  if M.is_bytes(s) then s = s[1] end
  if type(s) ~= "string" then error("rpcnet.decode: string expected, got " .. type(s), 2) end
  local len = #s
  local v, p = decode_at(s, 1, len, 0)
  if p <= len then raise("trailing", "bytes after the item") end
  return v
end

return M
