-- worker.lua: an rpcnet server that joins a cluster and serves "work"
-- (the Lua twin of examples/cluster/c/worker.c).
--
--   LUA_PATH="$REPO/bindings/lua/?.lua;;" LUA_CPATH="$REPO/build/bindings/lua/?.so;;" \
--   lua5.4 examples/cluster/lua/worker.lua --name N --cert F --key F --ca F
--       [--gossip HOST:PORT] [--listen HOST:PORT] [--join SEEDS] [--keys KEYS]
--       [--tag k=v]... [--lang L] [--probe-ms N]
--
-- Methods:
--   work    answers "<lang>:<name>:" followed by the request bytes
--   whoami  answers the node name
-- Tags: role=worker, lang=<lang>, then every --tag (which may override them).
--
-- Prints "ready NAME gossip PORT rpc PORT" once joined (or at once without
-- --join), then "event TYPE MEMBER STATE" per membership event (MEMBER and
-- STATE are "-" for partitioned/healed), each line flushed. Commands on
-- stdin, one per line:
--   tag K=V   sets a tag (gossiped)      untag K   removes it
--   members   prints "member NAME STATE LANG" lines, then "members end"
--   leave     leaves gracefully (2 s), prints "left STATUS", exits 0
-- EOF on stdin is ignored (the worker keeps serving). A failed join prints
-- the error on stderr and exits 3; bad arguments exit 2.
--
-- One loop, one Lua thread: s:serve() waits on the server fd, the cluster's
-- event fd (the cl:on_event handler) and stdin (s:watch(0, fn)) together.
-- stdin is unbuffered (setvbuf "no") so a read takes exactly one line and
-- a second line already sent stays in the pipe, keeping fd 0 readable.
-- Signals: plain Lua cannot catch SIGTERM/SIGINT (no signal API in the
-- standard library), so they kill the worker at once and the others see it
-- fail; send "leave" on stdin for a graceful exit.
local rpcnet = require("rpcnet")

local function usage(msg)
  io.stderr:write("worker.lua: ", msg, "\n",
    "usage: worker.lua --name N --cert F --key F --ca F [--gossip HOST:PORT] [--listen HOST:PORT]\n",
    "                  [--join SEEDS] [--keys KEYS] [--tag k=v]... [--lang L] [--probe-ms N]\n")
  os.exit(2)
end

local function pid()
  local f = io.open("/proc/self/stat", "r")
  local p = f and f:read("n")
  if f then f:close() end
  return p or os.time()
end

local o = {gossip = "127.0.0.1:0", listen = "127.0.0.1:0", lang = "lua", tags = {}}
local flags = {["--name"] = "name", ["--cert"] = "cert", ["--key"] = "key", ["--ca"] = "ca",
               ["--gossip"] = "gossip", ["--listen"] = "listen", ["--join"] = "join",
               ["--keys"] = "keys", ["--lang"] = "lang", ["--probe-ms"] = "probe"}
local i = 1
while i <= #arg do
  local a, v = arg[i], arg[i + 1]
  if v == nil then usage(a .. " needs a value") end
  if a == "--tag" then
    local k, val = v:match("^([^=]+)=(.*)$")
    if not k then usage("--tag needs k=v, got " .. v) end
    o.tags[#o.tags + 1] = {k, val}
  elseif flags[a] then
    o[flags[a]] = v
  else
    usage("unexpected argument " .. a)
  end
  i = i + 2
end
if not (o.cert and o.key and o.ca) then usage("--cert, --key and --ca are required") end
local name = o.name or ("worker-" .. pid())
local prefix = o.lang .. ":" .. name .. ":"

local function out(...)
  io.stdout:write(...)
  io.stdout:write("\n")
  io.stdout:flush()
end
local function fail(what, e)
  io.stderr:write("worker.lua: ", what, ": ", tostring(e), "\n")
  os.exit(1)
end

local ok, s = pcall(rpcnet.server, {cert_file = o.cert, key_file = o.key})
if not ok then fail("server", s) end
s:handle_raw("work", function(data) return prefix .. data end)
s:handle_raw("whoami", function() return name end)
local ok2, e = pcall(s.listen, s, o.listen)
if not ok2 then fail("listen", e) end

local copts = {node_name = name, gossip_bind = o.gossip, ca_file = o.ca, server_name = "localhost",
               server = s, tags = {role = "worker", lang = o.lang}}
if o.keys then copts.cluster_keys = o.keys end
if o.probe then copts.probe_interval_ms = o.probe end
local ok3, cl = pcall(rpcnet.cluster, copts)
if not ok3 then fail("cluster", cl) end
for _, kv in ipairs(o.tags) do
  local okt, et = pcall(cl.set_tag, cl, kv[1], kv[2])
  if not okt then fail("tag " .. kv[1], et) end
end

if o.join and o.join ~= "" then
  local okj, ej = pcall(cl.join, cl, o.join)
  if not okj then
    io.stderr:write("worker.lua: join failed: ", tostring(ej), "\n")
    cl:close()
    s:close()
    os.exit(3)
  end
end
out("ready ", name, " gossip ", cl:gossip_port(), " rpc ", s:port())

-- Membership events, run by the serve loop (it waits on the cluster fd).
cl:on_event(function(ev)
  local m = ev.member
  out("event ", ev.type, " ", m and m.name or "-", " ", m and m.state or "-")
end)

local leaving = false
local function command(line)
  line = line:gsub("\r$", "")
  local k, v = line:match("^tag ([^=]+)=(.*)$")
  if k then
    local okt, et = pcall(cl.set_tag, cl, k, v)
    if okt then out("tagged ", k, "=", v) else io.stderr:write("worker.lua: tag: ", tostring(et), "\n") end
  elseif line:match("^untag ") then
    pcall(cl.set_tag, cl, line:sub(7), nil)
  elseif line == "members" then
    for _, m in ipairs(cl:members()) do
      out("member ", m.name, " ", m.state, " ", m.tags.lang or "-")
    end
    out("members end")
  elseif line == "leave" then
    local okl, el = pcall(cl.leave, cl, 2)
    out("left ", okl and "OK" or (rpcnet.is_error(el) and el.name or tostring(el)))
    leaving = true
    s:shutdown(1) -- serve() returns once waiting handlers are done
  end
end

-- stdin: one line per wake-up; EOF stops watching (and is otherwise ignored).
io.stdin:setvbuf("no")
s:watch(0, function()
  local line = io.stdin:read("l")
  if line == nil then
    s:unwatch(0)
    return
  end
  command(line)
end)

s:serve()
cl:close()
s:close()
os.exit(leaving and 0 or 1)
