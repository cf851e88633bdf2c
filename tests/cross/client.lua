-- Cross-language smoke client (Lua). Usage: lua5.4 client.lua CA ADDR
local rpcnet = require("rpcnet")
local value = {text = "h\u{e9}llo \u{263a}", n = -5, big = 1 << 40, f = 1.5,
               list = rpcnet.array{1, "two", true}, raw = rpcnet.bytes("\0\1\255")}
local c = rpcnet.connect(arg[2], {ca_file = arg[1], server_name = "localhost"})
local sent = rpcnet.encode(value)
local got = c:call_raw("echo", sent, {timeout = 5})
local function hex(s) return (s:gsub(".", function(ch) return string.format("%02x", ch:byte()) end)) end
if got ~= sent then error("echo bytes differ: sent " .. hex(sent) .. " got " .. hex(got)) end
local v = rpcnet.decode(got)
assert(v.text == value.text and v.n == -5 and v.big == 1 << 40 and v.f == 1.5, "echo value differs")
local s = c:call("add", {a = 3, b = 4}, {timeout = 5})
assert(s.sum == 7, "add gave " .. tostring(s.sum))
c:close()
print("ok")
