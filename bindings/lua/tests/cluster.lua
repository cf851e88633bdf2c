-- Cluster tests for the Lua binding, run by run.lua (same runner):
-- several nodes (clusters with attached Lua servers) in this one Lua state
-- over real loopback UDP gossip sealed with a key and real QUIC calls, then
-- real processes: examples/cluster/lua/worker.lua next to the C worker,
-- called by the C director. Waits are bounded polls that fail the case when
-- they run out; nothing asserts timing.
return function(T)
  local test, eq, raises, certs, root = T.test, T.eq, T.raises, T.certs, T.root
  local rpcnet = require("rpcnet")
  local KEY = "0123456789abcdef0123456789abcdef"
  local OTHER = "fedcba9876543210fedcba9876543210"
  local now = rpcnet.monotonic
  local servers = {}

  -- Steps every test server once (at top level nobody else serves them).
  local function step_all(ms)
    local t_end = now() + ms / 1000
    repeat
      for _, s in ipairs(servers) do
        if not s:closed() then s:step(0) end
      end
      rpcnet.sleep(0.01)
    until now() >= t_end
  end
  local function wait_until(what, secs, fn)
    local t_end = now() + secs
    while true do
      local v = fn()
      if v then return v end
      if now() > t_end then error("timed out waiting for " .. what, 2) end
      step_all(20)
    end
  end

  local function base_opts(name, key)
    return {node_name = name, gossip_bind = "127.0.0.1:0", cluster_keys = key or KEY,
            ca_file = certs .. "/ca.pem", server_name = "localhost", probe_interval_ms = 200,
            probe_timeout_ms = 100, gossip_interval_ms = 50, join_timeout_ms = 3000}
  end
  -- A node; unless server == false it has a listening server serving
  -- work ("<name>:" .. request), whoami, chat (stream), tagged
  -- role=worker and id=<name>.
  local function node(name, o)
    o = o or {}
    local copts = base_opts(name, o.key)
    if o.strategy then copts.cluster_strategy = o.strategy end
    if o.join_timeout then copts.join_timeout_ms = o.join_timeout end
    local n = {name = name}
    if o.server ~= false then
      local s = rpcnet.server{cert_file = certs .. "/server.pem", key_file = certs .. "/server-key.pem"}
      s:handle_raw("work", function(data) return name .. ":" .. data end)
      s:handle("whoami", function() return name end)
      s:handle_stream("chat", function(st)
        for m in st:messages() do st:send({from = name, echo = m}) end
      end)
      s:listen("127.0.0.1:0")
      copts.server = s
      copts.tags = {role = "worker", id = name}
      n.s = s
      servers[#servers + 1] = s
    end
    n.cl = rpcnet.cluster(copts)
    n.seed = "127.0.0.1:" .. n.cl:gossip_port()
    return n
  end
  local function member(n, who, filter)
    for _, m in ipairs(n.cl:members(filter)) do
      if m.name == who then return m end
    end
    return nil
  end
  local function wait_state(n, who, want, secs)
    wait_until(n.name .. " to see " .. who .. " " .. want, secs or 5, function()
      local m = member(n, who)
      return m and m.state == want
    end)
  end
  -- Waits for an event of type typ about who (nil: anyone), taking them
  -- with next_event (which keeps this state's servers serving meanwhile).
  local function wait_event(n, typ, who, secs)
    local t_end = now() + (secs or 5)
    while now() < t_end do
      local ev = n.cl:next_event(0.1)
      if ev and ev.type == typ and (who == nil or (ev.member and ev.member.name == who)) then return ev end
    end
    error(n.name .. ": no '" .. typ .. "' event about " .. tostring(who), 2)
  end

  local a, b, d
  test("cluster: config errors", function()
    local e = raises(function() rpcnet.cluster{cluster_keys = "not-a-key", gossip_bind = "127.0.0.1:0"} end,
                     "INVALID_ARGUMENT")
    assert(e.message:find("cluster_keys"), e.message)
    assert(not e.message:find("not-a-key"), "key material echoed: " .. e.message)
    e = raises(function() rpcnet.cluster{cluster_strategy = "fastest", gossip_bind = "127.0.0.1:0"} end,
               "INVALID_ARGUMENT")
    assert(e.message:find("cluster_strategy"), e.message)
    raises(function() rpcnet.cluster{gossip_bind = "not an address"} end, "INVALID_ARGUMENT")
    raises(function() rpcnet.cluster{gossip_bind = "127.0.0.1:0", no_such_key = 1} end, "INVALID_ARGUMENT")
    assert(not pcall(rpcnet.cluster, {gossip_bind = "127.0.0.1:0", server = 5}), "server must be a server")
    local s <close> = rpcnet.server{cert_file = certs .. "/server.pem", key_file = certs .. "/server-key.pem"}
    -- not listening: attach refuses it, and the half-made node is freed
    e = raises(function() rpcnet.cluster{gossip_bind = "127.0.0.1:0", server = s} end, "INVALID_ARGUMENT")
    assert(e.message:find("listening"), e.message)
  end)

  test("cluster: start, join, name, port, members with a filter", function()
    a, b, d = node("a"), node("b"), node("d", {server = false})
    eq(a.cl:name(), "a"); eq(d.cl:name(), "d")
    assert(a.cl:gossip_port() > 0 and a.cl:fd() >= 0)
    assert(tostring(a.cl):find("rpcnet.Cluster(a)", 1, true), tostring(a.cl))
    eq(b.cl:join(a.seed), true)
    eq(d.cl:join({a.seed}), true) -- a list of seeds works too
    wait_state(d, "a", "alive"); wait_state(d, "b", "alive"); wait_state(b, "d", "alive")
    local workers = d.cl:members("role=worker")
    eq(#workers, 2, "members with role=worker (d has no role)")
    local names = {}
    for _, m in ipairs(workers) do
      names[#names + 1] = m.name
      eq(m.state, "alive"); eq(m.self, false); eq(m.tags.role, "worker"); eq(m.tags.id, m.name)
      assert(m.rpc_addr:match("^127%.0%.0%.1:%d+$"), m.rpc_addr)
      assert(m.gossip_addr:match("^127%.0%.0%.1:%d+$"), m.gossip_addr)
      eq(math.type(m.incarnation), "integer"); eq(math.type(m.inflight), "integer")
      eq(math.type(m.latency_us), "integer"); eq(type(m.phi), "number"); eq(m.breaker, "closed")
    end
    table.sort(names)
    eq(table.concat(names, ","), "a,b")
    eq(#d.cl:members({role = "worker", id = "b"}), 1, "table filter")
    eq(d.cl:members({id = "b"})[1].name, "b")
    local me = member(d, "d")
    eq(me.self, true); eq(me.rpc_addr, ""); eq(next(me.tags), nil)
    eq(#d.cl:members(), 3)
    raises(function() d.cl:members("=bad") end, "INVALID_ARGUMENT")
  end)

  test("cluster: joined events", function()
    local ev = wait_event(a, "joined", "b")
    eq(ev.member.state, "alive"); eq(ev.member.tags.role, "worker")
    wait_event(a, "joined", "d")
    -- the iterator form: drains what is queued, then ends
    local n = 0
    for e in b.cl:events() do n = n + 1; assert(type(e.type) == "string") end
    assert(n >= 1, "b saw events (a, d joined)")
    eq(b.cl:next_event(), nil)
  end)

  test("cluster: routed calls reach both workers and return the member", function()
    local by = {}
    for i = 1, 40 do
      local resp, who = d.cl:call_raw("work", "x" .. i, {filter = "role=worker", timeout = 3})
      eq(resp, who .. ":x" .. i)
      by[who] = (by[who] or 0) + 1
    end
    assert((by.a or 0) > 0 and (by.b or 0) > 0, "a " .. tostring(by.a) .. ", b " .. tostring(by.b))
    eq(by.a + by.b, 40)
    -- the value mapping
    local v, who = d.cl:call("whoami", nil, {filter = {id = "b"}})
    eq(v, "b"); eq(who, "b")
    -- a node never routes to itself: a's calls all reach b
    for _ = 1, 10 do
      local r, w = a.cl:call_raw("work", "", {filter = "role=worker"})
      eq(w, "b"); eq(r, "b:")
    end
    raises(function() d.cl:call("nope", 1, {filter = "id=a"}) end, "UNIMPLEMENTED")
  end)

  test("cluster: calls from inside serve() handlers yield (C thread + pipe)", function()
    -- a's "relay" calls the cluster (b) from its handler: the inner call
    -- runs on a C thread while the handler yields to a's loop.
    a.s:handle_raw("relay", function(data)
      local r, who = a.cl:call_raw("work", data, {filter = "role=worker", timeout = 5})
      return r .. "|" .. who
    end)
    for i = 1, 10 do
      local r, who = d.cl:call_raw("relay", "r" .. i, {filter = "id=a", timeout = 5})
      eq(who, "a"); eq(r, "b:r" .. i .. "|b")
    end
    -- Two handlers of a waiting at once: the stream handler "relay_slow"
    -- calls b's "slow", which answers only once "mark" ran on b; "mark" is
    -- called by a's "relay_mark" handler. Were a cluster call inside a
    -- handler to block the Lua state, "slow" and "mark" could never run.
    local marked = false
    b.s:handle_raw("slow", function()
      local t_end = now() + 4
      while not marked and now() < t_end do rpcnet.sleep(0.01) end
      return marked and "slow done" or "slow timed out"
    end)
    b.s:handle_raw("mark", function() marked = true; return "marked" end)
    a.s:handle_stream("relay_slow", function(stream)
      local m = stream:recv()
      stream:send(a.cl:call_raw(m, "", {filter = "id=b", timeout = 5}))
    end)
    a.s:handle_raw("relay_mark", function()
      return (a.cl:call_raw("mark", "", {filter = "id=b", timeout = 5}))
    end)
    local st <close> = d.cl:stream("relay_slow", {filter = "id=a", timeout = 8})
    st:send("slow")
    eq(d.cl:call_raw("relay_mark", "", {filter = "id=a", timeout = 5}), "marked")
    eq(st:recv(), "slow done")
    st:close_send()
    eq(st:recv(), nil)
  end)

  test("cluster: streams on a routed member", function()
    local st <close> = d.cl:stream("chat", {filter = "id=b", timeout = 5})
    st:send("hi")
    local m = st:recv()
    eq(m.from, "b"); eq(m.echo, "hi")
    st:send("again"); eq(st:recv().echo, "again")
    st:close_send()
    eq(st:recv(), nil); eq(st.status, 0)
    raises(function() d.cl:stream("chat", {filter = "id=nobody", timeout = 1}) end, "UNAVAILABLE")
  end)

  test("cluster: a tag change propagates and steers calls", function()
    a.cl:set_tag("zone", "eu")
    wait_until("d to see zone=eu on a", 5, function() return #d.cl:members("zone=eu") == 1 end)
    eq(d.cl:members("zone=eu")[1].name, "a")
    eq(member(d, "a").tags.zone, "eu")
    wait_event(d, "updated", "a")
    for _ = 1, 10 do
      local r, who = d.cl:call_raw("work", "z", {filter = "zone=eu"})
      eq(who, "a"); eq(r, "a:z")
    end
    local e = raises(function() d.cl:call_raw("work", "", {filter = {zone = "us"}, timeout = 0.5}) end,
                     "UNAVAILABLE")
    assert(e.message:find("no member"), e.message)
    a.cl:set_tag("zone", nil) -- removes it
    wait_until("zone tag removed", 5, function() return #d.cl:members("zone") == 0 end)
    a.cl:set_tag("n", 42)
    wait_until("numeric tag", 5, function() local m = member(d, "a"); return m and m.tags.n == "42" end)
    raises(function() a.cl:set_tag("bad,key", "x") end, "INVALID_ARGUMENT")
    assert(not pcall(a.cl.set_tag, a.cl, "k", {}), "a table is not a tag value")
  end)

  test("cluster: idempotent calls survive a member answering UNAVAILABLE", function()
    -- r routes round robin: every other call lands on b
    local r = node("r", {server = false, strategy = "round_robin"})
    r.cl:join(a.seed)
    wait_state(r, "a", "alive"); wait_state(r, "b", "alive")
    b.s:handle_raw("work", function() error(rpcnet.error("UNAVAILABLE", "draining")) end)
    -- without the flag a call landing on b fails (the error names b)
    local e = raises(function() r.cl:call_raw("work", "", {filter = "id=b"}) end, "UNAVAILABLE")
    eq(e.member, "b"); eq(e.message, "draining")
    -- with it, every call is answered, by a (retried there when b refused)
    for i = 1, 20 do
      local resp, who = r.cl:call_raw("work", "i" .. i, {filter = "role=worker", idempotent = true, timeout = 3})
      eq(who, "a"); eq(resp, "a:i" .. i)
    end
    local resp, who = r.cl:call_raw("work", "h", {filter = "role=worker", hedge = true, timeout = 3})
    eq(who, "a"); eq(resp, "a:h")
    b.s:handle_raw("work", function(data) return "b:" .. data end)
    r.cl:close()
  end)

  test("cluster: the serve loop runs the event handler (joined, left)", function()
    local seen, cls = {}, {}
    local function saw(what)
      for _, s in ipairs(seen) do if s == what then return true end end
      return false
    end
    local e = node("e", {server = false})
    e.cl:join(a.seed)
    -- serve() waits on the cluster fd too; stop() ends it from the handler
    a.cl:on_event(function(ev, cl)
      cls[cl] = true
      seen[#seen + 1] = ev.type .. " " .. (ev.member and ev.member.name or "-")
      if saw("joined e") then a.s:stop() end
    end)
    local t0 = now()
    a.s:serve{duration = 5}
    assert(saw("joined e"), "serve() ran the handler: " .. table.concat(seen, "; "))
    assert(now() - t0 < 4.5, "stop() ended serve()")
    assert(cls[a.cl] and next(cls, a.cl) == nil, "the handler gets the cluster")
    eq(a.s:closed(), false)
    -- a graceful leave: "left" everywhere (handler run by step())
    eq(b.cl:leave(2), true)
    wait_until("a's handler to see b leave", 5, function() return saw("left b") end)
    wait_state(d, "b", "left")
    wait_event(d, "left", "b")
    for _ = 1, 10 do
      local _, who = d.cl:call_raw("work", "", {filter = "role=worker"})
      eq(who, "a")
    end
    raises(function() b.cl:join(a.seed) end, "FAILED_PRECONDITION")
    a.cl:on_event(nil)
    e.cl:close()
  end)

  test("cluster: wrong key join raises PERMISSION_DENIED naming cluster_keys", function()
    local x = node("x", {key = OTHER, join_timeout = 1000})
    local e = raises(function() x.cl:join(a.seed) end, "PERMISSION_DENIED")
    assert(e.message:find("cluster_keys"), e.message)
    assert(tostring(e):find("PERMISSION_DENIED") and tostring(e):find("cluster_keys"), tostring(e))
    local p = node("p", {key = "", join_timeout = 1000}) -- no key at all
    raises(function() p.cl:join(a.seed) end, "PERMISSION_DENIED")
    eq(member(a, "x"), nil); eq(member(a, "p"), nil)
    raises(function() a.cl:join("127.0.0.1:notaport") end, "INVALID_ARGUMENT")
    -- closing a server closes its attached cluster first
    x.s:close(); p.s:close()
    eq(x.cl:closed(), true); eq(p.cl:closed(), true)
  end)

  test("cluster: keys rotate at run time; stats count", function()
    local r1 = node("r1")
    local r2 = node("r2")
    r2.cl:join(r1.seed)
    local NEW = "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
    for i, ring in ipairs({{KEY, NEW}, {NEW, KEY}, {NEW}}) do -- add, promote, drop
      r1.cl:set_keys(ring); r2.cl:set_keys(table.concat(ring, ","))
      r1.cl:set_tag("step", tostring(i))
      wait_until("step " .. i .. " gossiped after set_keys", 5, function()
        local ms = r2.cl:members("step=" .. i)
        return #ms == 1 and ms[1].name == "r1"
      end)
    end
    local e = raises(function() r1.cl:set_keys("short") end, "INVALID_ARGUMENT")
    assert(not e.message:find("short"), e.message)
    local st = r1.cl:stats()
    assert(st.members >= 2 and st.incarnation > 0 and st.pkts_in > 0, "stats")
    assert(st.auth_failures ~= nil and st.health ~= nil, "stats keys")
    r2.s:close(); r1.s:close()
  end)

  test("cluster: use after close errors cleanly", function()
    local n = node("z", {server = false})
    local st = d.cl:stream("chat", {filter = "id=a", timeout = 5})
    n.cl:close()
    n.cl:close() -- harmless
    eq(n.cl:closed(), true)
    assert(tostring(n.cl):find("closed"), tostring(n.cl))
    local e = raises(function() n.cl:members() end, "FAILED_PRECONDITION")
    assert(e.message:find("cluster is closed"), e.message)
    for _, f in ipairs({
      function() n.cl:name() end, function() n.cl:gossip_port() end, function() n.cl:join(a.seed) end,
      function() n.cl:set_tag("k", "v") end, function() n.cl:leave() end, function() n.cl:next_event() end,
      function() n.cl:events() end, function() n.cl:call("work", 1) end, function() n.cl:call_raw("work", "") end,
      function() n.cl:stream("chat") end, function() n.cl:on_event(print) end, function() n.cl:fd() end,
    }) do
      raises(f, "FAILED_PRECONDITION")
    end
    assert(not pcall(rpcnet.Cluster.members, {}), "a method without a cluster is a plain error")
    -- streams of a closed cluster are closed with it
    d.cl:close()
    raises(function() st:send("x") end, "FAILED_PRECONDITION")
    raises(function() d.cl:call_raw("work", "") end, "FAILED_PRECONDITION")
    do local c <close> = node("y", {server = false}).cl; eq(c:name(), "y") end
    -- __gc: the cluster is freed before its server, whichever was made first
    local function srv()
      local s = rpcnet.server{cert_file = certs .. "/server.pem", key_file = certs .. "/server-key.pem"}
      s:listen("127.0.0.1:0")
      return s
    end
    local s1 = srv()
    local c1 = rpcnet.cluster(base_opts("g1")); c1:attach(s1)
    local c2 = rpcnet.cluster(base_opts("g2"))
    local s2 = srv(); c2:attach(s2)
    local weak = setmetatable({c1, s1, c2, s2}, {__mode = "v"})
    c1, s1, c2, s2 = nil, nil, nil, nil
    collectgarbage(); collectgarbage()
    eq(next(weak), nil, "all collected")
  end)

  for _, n in ipairs({a, b}) do
    if n and n.s then n.s:close() end
  end
  for _, s in ipairs(servers) do s:close() end

  ---------------------------------------------------------------------------
  -- Real processes: the Lua worker example next to the C worker
  ---------------------------------------------------------------------------
  local build = T.build
  local lua = T.lua
  local worker = root .. "/examples/cluster/lua/worker.lua"
  local env = "LUA_PATH='" .. root .. "/bindings/lua/?.lua;;' LUA_CPATH='" .. build .. "/bindings/lua/?.so;;' "
  local cert_args = " --cert " .. certs .. "/server.pem --key " .. certs .. "/server-key.pem --ca " .. certs .. "/ca.pem"
  local function slurp(path)
    local f = io.open(path, "rb")
    if not f then return "" end
    local s = f:read("a")
    f:close()
    return s
  end
  local function wait_file(path, pattern, secs)
    local t_end = now() + (secs or 10)
    while true do
      local m = {slurp(path):match(pattern)}
      if m[1] then return table.unpack(m) end
      if now() > t_end then error(path .. ": no line matching " .. pattern .. " in:\n" .. slurp(path), 2) end
      rpcnet.sleep(0.05)
    end
  end
  local function run(cmd)
    local p = io.popen(cmd .. " 2>&1", "r")
    local outp = p:read("a")
    local _, _, code = p:close()
    return code, outp
  end

  test("cluster processes: Lua worker and C worker serve the C director", function()
    local cw_bin, dir_bin = build .. "/examples/cluster_worker", build .. "/examples/cluster_director"
    assert(io.open(cw_bin) and io.open(dir_bin), "C examples missing in " .. build .. "/examples")
    local tmp = os.tmpname()
    local cw_out, lw_out = tmp .. ".cw", tmp .. ".lw"
    local cw = assert(io.popen(cw_bin .. " --name cw" .. cert_args .. " --keys " .. KEY ..
                               " --tag role=worker --probe-ms 200 > " .. cw_out .. " 2>&1", "w"))
    local lw
    local ok, err = pcall(function()
      local cport = wait_file(cw_out, "ready cw gossip (%d+) rpc %d+")
      lw = assert(io.popen(env .. lua .. " " .. worker .. " --name lw" .. cert_args .. " --keys " .. KEY ..
                           " --join 127.0.0.1:" .. cport .. " --tag team=blue --probe-ms 200 > " .. lw_out .. " 2>&1", "w"))
      wait_file(lw_out, "ready lw gossip (%d+) rpc (%d+)")
      wait_file(lw_out, "event joined cw alive")
      wait_file(cw_out, "event joined lw alive")
      local code, outp = run(dir_bin .. " --ca " .. certs .. "/ca.pem --join 127.0.0.1:" .. cport ..
                             " --expect 2 --calls 20 --keys " .. KEY)
      eq(code, 0, "director exit status (output:\n" .. outp .. ")")
      local nl, nc = tonumber(outp:match("lang lua (%d+)")), tonumber(outp:match("lang c (%d+)"))
      assert(nl and nl > 0 and nc and nc > 0, "director output:\n" .. outp)
      eq(nl + nc, 20)
      assert(outp:find("served lw %d+") and outp:find("failed 0"), outp)
      -- another C worker comes and goes: the Lua worker prints both events
      local cw2 = assert(io.popen(cw_bin .. " --name cw2" .. cert_args .. " --keys " .. KEY ..
                                  " --join 127.0.0.1:" .. cport .. " > " .. tmp .. ".cw2 2>&1", "w"))
      wait_file(tmp .. ".cw2", "ready cw2")
      wait_file(lw_out, "event joined cw2 alive")
      cw2:write("leave\n")
      cw2:close()
      wait_file(lw_out, "event left cw2 left")
      os.remove(tmp .. ".cw2")
      -- tags: the worker's own, --tag, and one set from stdin; a director
      -- filtering on them reaches only the Lua worker
      lw:write("tag zone=eu\n", "members\n")
      lw:flush()
      wait_file(lw_out, "tagged zone=eu")
      wait_file(lw_out, "member cw alive c\n.-members end")
      code, outp = run(dir_bin .. " --ca " .. certs .. "/ca.pem --join 127.0.0.1:" .. cport ..
                       " --name d2 --filter lang=lua,team=blue,zone=eu --expect 1 --calls 5 --keys " .. KEY)
      eq(code, 0, "filtered director (output:\n" .. outp .. ")")
      assert(outp:find("lang lua 5") and not outp:find("lang c"), outp)
      -- leave on stdin: graceful, exit 0, "left" at the C worker
      lw:write("leave\n")
      lw:flush()
      wait_file(lw_out, "left OK")
      wait_file(cw_out, "event left lw left")
      local _, _, lcode = lw:close()
      lw = nil
      eq(lcode, 0, "Lua worker exit status")
    end)
    if lw then lw:write("leave\n"); lw:close() end
    cw:write("leave\n")
    cw:close()
    if not ok then error(err, 0) end
    -- EOF on stdin is ignored: the worker keeps serving until killed
    local code, outp = run("timeout 2 env " .. env .. lua .. " " .. worker .. " --name eof" .. cert_args .. " < /dev/null")
    eq(code, 124, "still running after EOF (output:\n" .. outp .. ")")
    assert(outp:find("ready eof"), outp)
    -- bad arguments: exit 2
    code = run(env .. lua .. " " .. worker .. " --name x < /dev/null")
    eq(code, 2)
    os.remove(tmp); os.remove(cw_out); os.remove(lw_out)
  end)

  test("cluster processes: a wrong key makes the Lua worker exit 3 with PERMISSION_DENIED", function()
    local cw_bin = build .. "/examples/cluster_worker"
    local tmp = os.tmpname()
    local cw = assert(io.popen(cw_bin .. " --name cwk" .. cert_args .. " --keys " .. KEY ..
                               " > " .. tmp .. " 2>&1", "w"))
    local ok, err = pcall(function()
      local cport = wait_file(tmp, "ready cwk gossip (%d+)")
      local code, outp = run(env .. lua .. " " .. worker .. " --name wk" .. cert_args .. " --keys " .. OTHER ..
                             " --join 127.0.0.1:" .. cport .. " < /dev/null")
      eq(code, 3, "exit status (output:\n" .. outp .. ")")
      assert(outp:find("join failed") and outp:find("PERMISSION_DENIED") and outp:find("cluster_keys"), outp)
    end)
    cw:write("leave\n")
    cw:close()
    os.remove(tmp)
    if not ok then error(err, 0) end
  end)
end
