-- Smoke test of the rock installed by tests/rock.sh: rpcnet and _rpcnet_c
-- must come from the luarocks tree (RPCNET_ROCK_TREE), and a client and a
-- server process both loaded from it make real calls.
--   lua5.4 rock_smoke.lua CERTDIR   (LUA_PATH/LUA_CPATH from luarocks path)
local tree = assert(os.getenv("RPCNET_ROCK_TREE"), "RPCNET_ROCK_TREE not set")
local certs = assert(arg[1], "usage: rock_smoke.lua CERTDIR")
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local passed, failed = 0, 0
local function check(name, fn)
  local ok, err = pcall(fn)
  if ok then passed = passed + 1 else failed = failed + 1; io.stdout:write("FAIL ", name, ": ", tostring(err), "\n") end
end
local function from_tree(path) return path ~= nil and path:sub(1, #tree + 1) == tree .. "/" end

check("modules resolve into the tree", function()
  for _, m in ipairs({"rpcnet", "rpcnet.cbor"}) do
    local p = package.searchpath(m, package.path)
    assert(from_tree(p), m .. " found at " .. tostring(p))
  end
  local p = package.searchpath("_rpcnet_c", package.cpath)
  assert(from_tree(p), "_rpcnet_c found at " .. tostring(p))
end)
local rpcnet = require("rpcnet")
check("version and values", function()
  assert(type(rpcnet.version) == "string" and rpcnet.version ~= "", "version")
  assert(rpcnet.decode(rpcnet.encode({a = 1})).a == 1, "encode/decode")
end)
check("calls to a server loaded from the tree", function()
  local lua = arg[-1] or "lua5.4"
  local srv = assert(io.popen(lua .. " " .. here .. "/server.lua " .. certs, "r"))
  local port = assert(tonumber(srv:read("l")), "server did not print a port")
  local c <close> = rpcnet.connect("127.0.0.1:" .. port, {ca_file = certs .. "/ca.pem", server_name = "localhost"})
  assert(c:call("add", {a = 1, b = 2}, {timeout = 5}).sum == 3, "add")
  assert(c:call_raw("echo_raw", "a\0b", {timeout = 5}) == "a\0b", "echo_raw")
  assert(c:call("shutdown", 0, {timeout = 5}) == true, "shutdown")
  c:close()
  srv:close()
end)
check("cluster from the tree: a node, a server attached, a routed call on the C thread", function()
  assert(require("_rpcnet_c").cluster_call_start, "cluster_call_start missing")
  local s <close> = rpcnet.server{cert_file = certs .. "/server.pem", key_file = certs .. "/server-key.pem"}
  s:handle_raw("work", function(d) return "w:" .. d end)
  s:listen("127.0.0.1:0")
  local a <close> = rpcnet.cluster{node_name = "rock-a", gossip_bind = "127.0.0.1:0", server = s,
                                   ca_file = certs .. "/ca.pem", server_name = "localhost", tags = {role = "w"}}
  local d <close> = rpcnet.cluster{node_name = "rock-d", gossip_bind = "127.0.0.1:0",
                                   ca_file = certs .. "/ca.pem", server_name = "localhost"}
  assert(d:join("127.0.0.1:" .. a:gossip_port()))
  local t_end = rpcnet.monotonic() + 5
  while #d:members("role=w") == 0 and rpcnet.monotonic() < t_end do rpcnet.sleep(0.02) end
  local r, who = d:call_raw("work", "x", {filter = "role=w", timeout = 5})
  assert(r == "w:x" and who == "rock-a", tostring(r) .. " " .. tostring(who))
end)
io.stdout:write("rock: ", passed, " passed, ", failed, " failed\n")
os.exit(failed == 0 and 0 or 1)
