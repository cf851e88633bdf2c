-- Helpers shared by the Lua conformance server and client: the JSON reader
-- of the binding's tests (loaded by path, not copied) and hex conversion.
local M = {}

-- here: the directory of the calling script.
function M.load_json(here)
  local candidates = {here .. "/../../bindings/lua/tests/json.lua"}
  for p in (package.path):gmatch("[^;]+") do
    candidates[#candidates + 1] = (p:gsub("%?%.lua$", "tests/json.lua"))
  end
  for _, p in ipairs(candidates) do
    local f = io.open(p, "rb")
    if f then f:close(); return dofile(p) end
  end
  error("cannot find bindings/lua/tests/json.lua")
end

function M.unhex(h) return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)) end

-- Hex of s, cut after 200 digits (error messages stay readable).
function M.hex(s)
  local h = s:gsub(".", function(c) return string.format("%02x", c:byte()) end)
  if #h > 200 then h = h:sub(1, 200) .. "...(" .. #s .. " bytes)" end
  return h
end

return M
