-- Cross-language smoke server (Lua). Usage: lua5.4 server.lua CERT KEY
local rpcnet = require("rpcnet")
local s = rpcnet.server{cert_file = arg[1], key_file = arg[2]}
s:handle("echo", function(req) return req end)
s:handle("add", function(req) return {sum = req.a + req.b} end)
print("PORT " .. s:listen("127.0.0.1:0"))
io.stdout:flush()
s:serve()
