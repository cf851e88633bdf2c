-- Minimal JSON reader for the conformance vectors (objects, arrays,
-- strings with escapes, numbers, true/false/null).
local M = {}
local function err(pos, msg) error("json at " .. pos .. ": " .. msg, 0) end
local function skip(s, i) return s:find("[^ \t\r\n]", i) or #s + 1 end
local parse
local function str(s, i)
  local out, j = {}, i + 1
  while true do
    local c = s:sub(j, j)
    if c == "" then err(j, "unterminated string") end
    if c == '"' then return table.concat(out), j + 1 end
    if c == "\\" then
      local e = s:sub(j + 1, j + 1)
      local map = {['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t"}
      if map[e] then out[#out + 1] = map[e]; j = j + 2
      elseif e == "u" then
        local cp = tonumber(s:sub(j + 2, j + 5), 16); j = j + 6
        if cp >= 0xD800 and cp <= 0xDBFF and s:sub(j, j + 1) == "\\u" then
          local lo = tonumber(s:sub(j + 2, j + 5), 16); j = j + 6
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
        end
        out[#out + 1] = utf8.char(cp)
      else err(j, "bad escape") end
    else out[#out + 1] = c; j = j + 1 end
  end
end
parse = function(s, i)
  i = skip(s, i)
  local c = s:sub(i, i)
  if c == "{" then
    local t = {}
    i = skip(s, i + 1)
    if s:sub(i, i) == "}" then return t, i + 1 end
    while true do
      local k; k, i = str(s, skip(s, i))
      i = skip(s, i)
      if s:sub(i, i) ~= ":" then err(i, "':' expected") end
      t[k], i = parse(s, i + 1)
      i = skip(s, i)
      local d = s:sub(i, i)
      if d == "}" then return t, i + 1 end
      if d ~= "," then err(i, "',' expected") end
      i = i + 1
    end
  elseif c == "[" then
    local t = {}
    i = skip(s, i + 1)
    if s:sub(i, i) == "]" then return t, i + 1 end
    while true do
      t[#t + 1], i = parse(s, i)
      i = skip(s, i)
      local d = s:sub(i, i)
      if d == "]" then return t, i + 1 end
      if d ~= "," then err(i, "',' expected") end
      i = i + 1
    end
  elseif c == '"' then return str(s, i)
  elseif s:sub(i, i + 3) == "true" then return true, i + 4
  elseif s:sub(i, i + 4) == "false" then return false, i + 5
  elseif s:sub(i, i + 3) == "null" then return nil, i + 4
  else
    local num = s:match("^-?%d+%.?%d*[eE]?[+-]?%d*", i)
    if not num then err(i, "unexpected " .. c) end
    return tonumber(num), i + #num
  end
end
function M.decode(s) local v = parse(s, 1); return v end
return M
