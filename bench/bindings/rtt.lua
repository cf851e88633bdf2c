-- Lua row of bench/bindings/run.sh: unary 64 B round trips, one in flight.
--   lua5.4 rtt.lua CA_FILE ADDR CALLS   ->  prints "p50_us p99_us"
local rpcnet = require("rpcnet")
local ca, addr, n = arg[1], arg[2], tonumber(arg[3])
local c = rpcnet.connect(addr, {ca_file = ca, server_name = "localhost"})
local payload = string.rep("x", 64)
local times = {}
for i = 1, n + n // 10 do -- the first tenth warms up
  local t0 = rpcnet.monotonic()
  c:call_raw("echo", payload, {timeout = 5})
  local dt = (rpcnet.monotonic() - t0) * 1e6
  if i > n // 10 then times[#times + 1] = dt end
end
c:close()
table.sort(times)
print(string.format("%.1f %.1f", times[n // 2 + 1], times[math.floor(n * 0.99) + 1]))
