-- rpcnet: Lua 5.4 binding of the rpcnet C library (RPC over QUIC, CBOR).
--
-- The C API is wrapped by SWIG (swig/rpcnet.i + swig/lua.i) as the module
-- _rpcnet_c; this file is the idiomatic layer: error values, handles with
-- close/__gc/__close, the value mapping (rpcnet/cbor.lua), streaming
-- iterators, a single-threaded server loop running handlers as
-- coroutines, and the cluster layer (rpcnet.cluster). No library thread
-- ever calls into Lua: every method is registered pulled (fn == NULL) and
-- taken with rpcnet_server_next; cluster events are pulled with
-- rpcnet_cluster_next_event (the loop waits on rpcnet_cluster_fd).
local C = require("_rpcnet_c")
local cbor = require("rpcnet.cbor")

local M = {}
M._VERSION = C.rpcnet_version()
M.version = M._VERSION

---------------------------------------------------------------------------
-- Status codes and errors
---------------------------------------------------------------------------
local OK = C.RPCNET_OK
local END_OF_STREAM = C.RPCNET_END_OF_STREAM
local WOULD_BLOCK = C.RPCNET_WOULD_BLOCK

M.status = {}
for code = 0, 16 do M.status[C.rpcnet_status_name(code)] = code end

local Error = {__name = "rpcnet.Error"}
Error.__index = Error
Error.__tostring = function(e)
  local s = "rpcnet error " .. e.name .. " (" .. tostring(e.code) .. ")"
  if e.kind then s = s .. " [" .. e.kind .. "]" end
  if e.message and e.message ~= "" then s = s .. ": " .. e.message end
  return s
end
M.Error = Error

local function code_of(code)
  if type(code) == "string" then
    local c = M.status[code:upper()]
    if not c then error("rpcnet.error: unknown status name " .. code, 3) end
    return c
  end
  return math.tointeger(code) or C.RPCNET_UNKNOWN
end

-- rpcnet.error(code or name, message): an error value; raise it with
-- error(). A handler raising it answers the call with that status.
function M.error(code, message)
  code = code_of(code)
  return setmetatable({code = code, name = C.rpcnet_status_name(code), message = message or ""}, Error)
end
function M.is_error(v) return getmetatable(v) == Error end

local function raise(code, message, kind)
  local e = M.error(code, message)
  e.kind = kind
  error(e, 0)
end
-- The last failure of an rpcnet call on this thread.
local function raise_last(code, what)
  local msg = C.rpcnet_last_error()
  if what and msg == "" then msg = what end
  raise(code, msg)
end
local function closed(what) raise(C.RPCNET_FAILED_PRECONDITION, what .. " is closed") end

-- Value errors: INVALID_ARGUMENT with kind = the spec's error name
-- (malformed, truncated, trailing, depth, utf8, duplicate_key, unsupported,
-- invalid_tag).
cbor.init(function(kind, msg) raise(C.RPCNET_INVALID_ARGUMENT, kind .. ": " .. msg, kind) end)

---------------------------------------------------------------------------
-- Values
---------------------------------------------------------------------------
M.null = cbor.null
M.bytes, M.is_bytes = cbor.bytes, cbor.is_bytes
M.int, M.is_int = cbor.int, cbor.is_int
M.tag, M.is_tag = cbor.tag, cbor.is_tag
M.array, M.is_array = cbor.array, cbor.is_array
M.map, M.is_map = cbor.map, cbor.is_map
M.encode, M.decode = cbor.encode, cbor.decode
M.max_depth = cbor.max_depth
M.monotonic = C.monotonic
local encode, decode = cbor.encode, cbor.decode

local function as_raw(s, what)
  if cbor.is_bytes(s) then return s:value() end
  if type(s) ~= "string" then error(what .. ": string expected, got " .. type(s), 3) end
  return s
end

local function timeout_ms(t)
  if t == nil then return 0 end
  if type(t) ~= "number" or t ~= t then error("timeout must be a number of seconds", 3) end
  if t <= 0 then return 1 end -- already expired: a 1 ms deadline, not the default
  local ms = math.ceil(t * 1000)
  if ms > 0x7fffffff then ms = 0x7fffffff end
  return math.tointeger(ms)
end

-- Metadata or trailers as a plain table key -> string (binary safe; "-bin"
-- keys carry bytes), listed with a rpcnet_*_count / rpcnet_*_at pair. The
-- wire holds one value per key.
local function list_metadata(count, at, h)
  local t = {}
  for i = 0, count(h) - 1 do
    local k, v = at(h, i)
    if k == nil then break end
    if t[k] == nil then t[k] = v or "" end
  end
  return t
end

local function make_config(opts, what)
  local cfg = C.rpcnet_config_new()
  if not cfg then raise(C.RPCNET_RESOURCE_EXHAUSTED, "out of memory") end
  for k, v in pairs(opts or {}) do
    if type(k) == "string" then
      local sv
      if type(v) == "boolean" then sv = v and "true" or "false"
      elseif math.type(v) == "integer" or type(v) == "string" then sv = tostring(v)
      elseif type(v) == "number" then sv = tostring(math.tointeger(v) or v)
      else
        C.rpcnet_config_free(cfg)
        error(what .. ": option " .. k .. " must be a string, number or boolean", 3)
      end
      local st = C.rpcnet_config_set(cfg, k, sv)
      if st ~= OK then
        local msg = C.rpcnet_last_error()
        C.rpcnet_config_free(cfg)
        raise(st, msg)
      end
    end
  end
  return cfg
end

---------------------------------------------------------------------------
-- Client
---------------------------------------------------------------------------
local Client = {__name = "rpcnet.Client"}
Client.__index = Client
local Call = {__name = "rpcnet.Call"}
Call.__index = Call
local current_task -- the serve() handler task being resumed, if any

-- rpcnet.connect(addr, opts): opts are config keys (ca_file, server_name,
-- verify_peer, handshake_timeout_ms, ...; see rpcnet.h).
function M.connect(addr, opts)
  if type(addr) ~= "string" then error("rpcnet.connect: address string expected", 2) end
  local cfg = make_config(opts, "rpcnet.connect")
  local h = C.rpcnet_client_connect(cfg, addr)
  local msg = C.rpcnet_last_error()
  C.rpcnet_config_free(cfg)
  if not h then raise(C.RPCNET_UNAVAILABLE, msg) end
  return setmetatable({_h = h, _calls = setmetatable({}, {__mode = "k"}), addr = addr}, Client)
end

function Client:close()
  local h = self._h
  if not h then return end
  self._h = nil
  for call in pairs(self._calls) do call:close() end
  C.rpcnet_client_close(h)
end
Client.__gc = Client.close
Client.__close = Client.close
function Client:closed() return self._h == nil end
function Client:__tostring() return "rpcnet.Client(" .. self.addr .. (self._h and ")" or ", closed)") end

local function check_client(self)
  if getmetatable(self) ~= Client then error("rpcnet: client method called without a client (use c:method)", 3) end
  if not self._h then closed("client") end
  return self._h
end

-- A call object around a started call handle ch, owned by owner (a client
-- or a cluster: closing the owner closes its calls).
local function wrap_call(owner, ch, method, opts, pump)
  local call = setmetatable({_h = ch, _client = owner, _pump = pump, method = method, trailers = {}}, Call)
  owner._calls[call] = true
  if opts.metadata then
    for k, v in pairs(opts.metadata) do
      local st = C.rpcnet_call_set_metadata(ch, tostring(k), as_raw(v, "metadata value"))
      if st ~= OK then
        local msg = C.rpcnet_last_error()
        call:close()
        raise(st, msg)
      end
    end
  end
  return call
end

local function new_call(client, method, opts)
  local h = check_client(client)
  if type(method) ~= "string" then error("rpcnet: method name string expected", 3) end
  opts = opts or {}
  local ch = C.rpcnet_client_start(h, method, timeout_ms(opts.timeout))
  if not ch then raise_last(C.RPCNET_UNAVAILABLE, "cannot start call") end
  return wrap_call(client, ch, method, opts)
end

function Call:close()
  local h = self._h
  if not h then return end
  self._h = nil
  if self._client then self._client._calls[self] = nil end
  C.rpcnet_call_free(h)
end
Call.__gc = Call.close
Call.__close = Call.close
function Call:__tostring() return "rpcnet.Call(" .. self.method .. ")" end
local function call_h(self)
  if getmetatable(self) ~= Call then error("rpcnet: call method called without a call (use s:method)", 3) end
  if not self._h then closed("call") end
  return self._h
end

-- Client calls made inside a serve() handler coroutine (a handler calling
-- another service, or this very server) must not block the Lua state: the
-- loop would stop, and with it a peer in this state that the call waits
-- for. There they poll with timeout 0 and yield; the loop waits on the
-- call's fd (task.wait_fd) and resumes them.
-- Background tasks of the loop (watch callbacks, cluster event handlers;
-- task.bg) yield the same way.
local function serve_task()
  local task = current_task
  if task and (task.req or task.bg) and coroutine.isyieldable() and task.co == coroutine.running() then
    return task
  end
  return nil
end
-- Yields the task until fd is readable or wake (monotonic seconds) is due;
-- the loop resumes every waiting task each round, so callers re-check.
local function yield_on_fd(task, fd, wake)
  if fd < 0 then -- no descriptor: look again in 5 ms
    local soon = C.monotonic() + 0.005
    wake, fd = (wake and math.min(wake, soon)) or soon, nil
  end
  task.wait_fd, task.wake_at = fd, wake
  coroutine.yield()
  task.wait_fd, task.wake_at = nil, nil
end
local function deadline_of(timeout)
  if timeout == nil then return nil end
  if type(timeout) ~= "number" or timeout ~= timeout then error("timeout must be a number of seconds", 3) end
  return C.monotonic() + math.max(0, timeout)
end
local function ms_of(timeout)
  return math.tointeger(math.min(0x7fffffff, math.max(0, math.ceil(timeout * 1000))))
end

-- Servers of this Lua state (weak), for pump_wait below.
local live_servers = setmetatable({}, {__mode = "k"})
local server_prepare, server_process -- the loop's two halves (Server section)

-- The listening servers of this state that no serve()/step() is running.
local function idle_servers()
  local list
  for s in pairs(live_servers) do
    if s._h and not s._serving and not s._pumping and not s._down and C.rpcnet_server_port(s._h) > 0 then
      list = list or {}
      list[#list + 1] = s
    end
  end
  return list
end

-- One round of waiting for fd (or until wake) outside serve(), while the
-- idle servers of this state keep serving: a cluster call routed to
-- another node of this state (or to a member that calls back into it) must
-- be answered by this state's Lua handlers, which blocking in C would
-- stall.
local function pump_wait(servers, fd, wake)
  local fds, wait = {}, 100
  if fd and fd >= 0 then fds[1] = fd else wait = 5 end
  if wake then wait = math.max(0, math.min(wait, math.tointeger(math.ceil((wake - C.monotonic()) * 1000)))) end
  local live = {}
  for _, s in ipairs(servers) do
    if s._h and not s._serving and not s._pumping then
      live[#live + 1] = s
      wait = server_prepare(s, fds, wait)
    end
  end
  C.poll(fds, wait)
  for _, s in ipairs(live) do
    if s._h then
      s._pumping = true
      local ok, err = pcall(server_process, s)
      s._pumping = false
      if not ok then error(err, 0) end
    end
  end
end

-- How the current context waits for an fd without stalling the state:
-- a function(fd, wake) to call once per round (re-check after it), or nil
-- to block in C. In a serve() task it yields to the loop; with pump (the
-- cluster's calls and streams) code outside serve() keeps this state's idle
-- servers serving meanwhile.
local function waiter(pump)
  local task = serve_task()
  if task then return function(fd, wake) yield_on_fd(task, fd, wake) end end
  if pump then
    local servers = idle_servers()
    if servers then return function(fd, wake) pump_wait(servers, fd, wake) end end
  end
  return nil
end

-- Sends one message. Under backpressure (the server reads slowly):
-- outside a serve() handler it blocks until there is room, at most until
-- the call's deadline (the call then ends: DEADLINE_EXCEEDED is raised), or
-- at most `timeout` seconds when given (then nil, "WOULD_BLOCK" and nothing
-- was sent); inside a serve() handler coroutine it yields to the loop while
-- waiting (same limits). Returns true once sent.
function Call:send_raw(data, timeout)
  local h = call_h(self)
  data = as_raw(data, "send_raw")
  local wake = deadline_of(timeout)
  local wait = waiter(self._pump)
  local st
  if wait then
    while true do
      st = C.rpcnet_call_send_timeout(h, data, 0)
      if st ~= WOULD_BLOCK then break end
      if wake and C.monotonic() >= wake then return nil, "WOULD_BLOCK" end
      wait(C.rpcnet_call_send_fd(h), wake)
      h = call_h(self) -- closed meanwhile: raises
    end
  elseif wake then
    st = C.rpcnet_call_send_timeout(h, data, ms_of(timeout))
    if st == WOULD_BLOCK then return nil, "WOULD_BLOCK" end
  else
    st = C.rpcnet_call_send(h, data)
  end
  if st ~= OK then raise_last(st) end
  return true
end
function Call:send(v, timeout) return self:send_raw(encode(v), timeout) end
-- Never raises for the call's own end: when the call already ended,
-- rpcnet_call_close_send returns its final status, which recv reports.
function Call:close_send()
  C.rpcnet_call_close_send(call_h(self))
end
function Call:cancel()
  if self._h then C.rpcnet_call_cancel(self._h) end
end

-- The next message as a string, or nil when the call ended OK (raises the
-- error value when it ended with another status). timeout (seconds)
-- optional: nil and "WOULD_BLOCK" when nothing came in time.
-- Inside a serve() handler coroutine it yields to the loop while waiting.
function Call:recv_raw(timeout)
  local h = call_h(self)
  if self.status then
    if self.status ~= OK then raise(self.status, self.message) end
    return nil
  end
  local wake = deadline_of(timeout)
  local wait = waiter(self._pump)
  local st, data
  if wait then
    while true do
      st, data = C.rpcnet_call_recv(h, 0)
      if st ~= WOULD_BLOCK or (wake and C.monotonic() >= wake) then break end
      wait(C.rpcnet_call_fd(h), wake)
      h = call_h(self)
    end
  else
    st, data = C.rpcnet_call_recv(h, wake and ms_of(timeout) or -1)
  end
  if st == OK then return data end
  if st == WOULD_BLOCK then return nil, "WOULD_BLOCK" end
  if st == END_OF_STREAM then
    local code, msg = C.rpcnet_call_status(h)
    self.trailers = list_metadata(C.rpcnet_call_trailer_count, C.rpcnet_call_trailer_at, h)
    self.status, self.message = code, msg
    self.status_name = C.rpcnet_status_name(code)
    if code ~= OK then raise(code, msg) end
    return nil
  end
  raise_last(st)
end
function Call:recv(timeout)
  local data, why = self:recv_raw(timeout)
  if data == nil then return nil, why end
  return decode(data)
end
-- Iterators over the remaining messages (values / raw strings).
function Call:messages() return function() return self:recv() end end
function Call:messages_raw() return function() return self:recv_raw() end end
Call.__call = function(self) return self:recv() end

-- The value of trailing metadata key once the call ended, or nil (the
-- whole set: call.trailers, a plain table, filled when the end is read).
function Call:trailer(key)
  return (C.rpcnet_swig_call_trailer(call_h(self), key))
end
function Call:fd() return C.rpcnet_call_fd(call_h(self)) end

-- opts.trailers: true for every trailer, or a list of keys for those only;
-- the table key -> string returned as a second value.
local function wanted_trailers(call, want)
  if not want then return nil end
  if want == true then return call.trailers end
  local tr = {}
  for _, k in ipairs(want) do tr[k] = call.trailers[k] end
  return tr
end

-- Unary: returns the decoded answer. With opts.metadata the call uses a
-- call handle; opts.trailers (true, or a list of keys) asks for the
-- trailers, returned as a second value (table key -> string).
local function unary(self, method, data, opts)
  local h = check_client(self)
  opts = opts or {}
  -- rpcnet_client_call blocks; inside a serve() handler use a call handle,
  -- whose waits yield to the loop.
  if opts.metadata == nil and opts.trailers == nil and not serve_task() then
    if type(method) ~= "string" then error("rpcnet: method name string expected", 3) end
    local st, resp = C.rpcnet_client_call(h, method, data, timeout_ms(opts.timeout))
    if st ~= OK then raise_last(st) end
    return resp
  end
  local call <close> = new_call(self, method, opts)
  call:send_raw(data)
  call:close_send()
  local resp = call:recv_raw()
  while call:recv_raw() do end -- reach the status (raises on failure)
  return resp, wanted_trailers(call, opts.trailers)
end
function Client:call_raw(method, data, opts)
  return unary(self, method, as_raw(data, "call_raw"), opts)
end
function Client:call(method, value, opts)
  local resp, tr = unary(self, method, encode(value), opts)
  return decode(resp), tr
end

-- Server streaming: `for msg in c:server_stream(m, req) do ... end`. The
-- call object is also returned as the loop's closing value, so the call is
-- freed when the loop ends; keep it (local s = c:server_stream(...)) to
-- read s.status / s:trailer(k) after the loop, then s:close().
function Client:server_stream(method, value, opts)
  local call = new_call(self, method, opts)
  call:send(value)
  call:close_send()
  return call, nil, nil, call
end

-- Client streaming: sends every value of a list, or every value an
-- iterator function returns until nil; returns the decoded answer (and the
-- trailers asked for with opts.trailers).
function Client:client_stream(method, source, opts)
  local call <close> = new_call(self, method, opts)
  if type(source) == "function" then
    for v in source do call:send(v) end
  elseif type(source) == "table" then
    for _, v in ipairs(source) do call:send(v) end
  else
    error("rpcnet: client_stream needs a list or an iterator function", 2)
  end
  call:close_send()
  local resp = call:recv()
  while call:recv_raw() do end
  return resp, wanted_trailers(call, opts and opts.trailers)
end

-- Bidirectional streaming: a call object (send, close_send, recv,
-- messages, status, trailer, cancel, close).
function Client:bidi(method, opts) return new_call(self, method, opts) end
Client.stream = Client.bidi

---------------------------------------------------------------------------
-- Server
---------------------------------------------------------------------------
local Server = {__name = "rpcnet.Server"}
Server.__index = Server

-- rpcnet.server{cert_file = ..., key_file = ..., ...config keys}
function M.server(opts)
  local cfg = make_config(opts, "rpcnet.server")
  local h = C.rpcnet_server_new(cfg)
  local msg = C.rpcnet_last_error()
  C.rpcnet_config_free(cfg)
  if not h then raise(C.RPCNET_INVALID_ARGUMENT, msg) end
  local s = setmetatable({_h = h, _handlers = {}, _tasks = {}, _watch = {}, _clusters = {}}, Server)
  live_servers[s] = true
  return s
end

local function server_h(self)
  if getmetatable(self) ~= Server then error("rpcnet: server method called without a server (use s:method)", 3) end
  if not self._h then closed("server") end
  return self._h
end

local function register(self, name, fn, kind)
  local h = server_h(self)
  if type(name) ~= "string" then error("rpcnet: method name string expected", 3) end
  if type(fn) ~= "function" then error("rpcnet: handler function expected", 3) end
  local st
  if kind == "stream" then st = C.rpcnet_swig_server_pull_stream(h, name)
  else st = C.rpcnet_swig_server_pull(h, name) end
  if st ~= OK then raise_last(st) end
  self._handlers[name] = {fn = fn, kind = kind}
end
-- fn(request_value, ctx) -> answer value
function Server:handle(name, fn) register(self, name, fn, "unary") end
-- fn(request_string, ctx) -> answer string
function Server:handle_raw(name, fn) register(self, name, fn, "raw") end
-- fn(stream, ctx): stream:recv(), stream:send(v), stream:messages()
function Server:handle_stream(name, fn) register(self, name, fn, "stream") end

function Server:listen(addr)
  local h = server_h(self)
  local st = C.rpcnet_server_listen(h, addr)
  if st ~= OK then raise_last(st) end
  return C.rpcnet_server_port(h)
end
function Server:port()
  return C.rpcnet_server_port(server_h(self))
end

-- Per-request context (ctx) and stream objects ---------------------------
local Ctx = {__name = "rpcnet.Context"}
Ctx.__index = Ctx
local Stream = {__name = "rpcnet.ServerStream"}
Stream.__index = Stream

local function req_of(obj)
  local r = obj._task.req
  if not r then raise(C.RPCNET_FAILED_PRECONDITION, "request already answered") end
  return r
end
function Ctx:cancelled() local r = self._task.req; return r == nil or C.rpcnet_request_cancelled(r) ~= 0 end
-- Seconds left before the call's deadline (0 when passed), or nil.
function Ctx:time_remaining()
  local ms = C.rpcnet_request_deadline_ms(req_of(self))
  if ms < 0 then return nil end
  return ms / 1000
end
function Ctx:set_trailer(key, value)
  local st = C.rpcnet_request_set_trailer(req_of(self), key, as_raw(value, "set_trailer"))
  if st ~= OK then raise_last(st) end
end
function Ctx:get_metadata(key)
  return (C.rpcnet_swig_request_metadata(req_of(self), key))
end

local function new_ctx(task)
  local req = task.req
  local ms = C.rpcnet_request_deadline_ms(req)
  local ctx = setmetatable({
    _task = task,
    method = C.rpcnet_request_method(req),
    peer = C.rpcnet_request_peer(req),
    -- seconds left at dispatch, or nil when the client set no deadline
    deadline = ms >= 0 and ms / 1000 or nil,
  }, Ctx)
  -- every entry, a plain table key -> string (pairs works)
  ctx.metadata = list_metadata(C.rpcnet_request_metadata_count, C.rpcnet_request_metadata_at, req)
  return ctx
end

-- Waiting inside a handler: in a serve() coroutine, poll with timeout 0 and
-- yield so other handlers run; elsewhere block.
function Stream:recv_raw()
  local task = self._task
  while true do
    local r = req_of(self)
    local inside = coroutine.isyieldable() and task.co == coroutine.running()
    local st, data = C.rpcnet_request_recv(r, inside and 0 or -1)
    if st == OK then return data end
    if st == END_OF_STREAM then return nil end
    if st ~= WOULD_BLOCK then raise_last(st) end
    if inside then
      task.waiting = true
      coroutine.yield()
      task.waiting = false
    end
  end
end
function Stream:recv()
  local data = self:recv_raw()
  if data == nil then return nil end
  return decode(data)
end
function Stream:messages() return function() return self:recv() end end
-- Sending: in a serve() coroutine, send only while the request's send fd
-- says there is room (rpcnet_request_send would not block); otherwise
-- yield, and the loop waits on that fd. Elsewhere rpcnet_request_send
-- blocks under backpressure.
function Stream:send_raw(data)
  local task = self._task
  data = as_raw(data, "send_raw")
  local r = req_of(self)
  if coroutine.isyieldable() and task.co == coroutine.running() then
    while true do
      local fd = C.rpcnet_request_send_fd(r)
      if fd < 0 or C.poll({fd}, 0) > 0 then break end
      task.wait_send = true
      coroutine.yield()
      task.wait_send = false
      r = req_of(self)
    end
  end
  local st = C.rpcnet_request_send(r, data)
  if st ~= OK then raise_last(st) end
end
function Stream:send(v) return self:send_raw(encode(v)) end

-- rpcnet.sleep(seconds): inside a serve() handler it yields so other
-- handlers run meanwhile; elsewhere it blocks the caller.
function M.sleep(seconds)
  local wake = C.monotonic() + seconds
  local task = current_task
  if task and coroutine.isyieldable() and task.co == coroutine.running() then
    task.wake_at = wake
    while C.monotonic() < wake do coroutine.yield() end
    task.wake_at = nil
    return
  end
  while true do
    local left = wake - C.monotonic()
    if left <= 0 then return end
    C.poll({}, math.tointeger(math.ceil(left * 1000)))
  end
end

local function answer_error(req, err)
  if getmetatable(err) == Error then
    local code = err.code
    if code == OK then code = C.RPCNET_UNKNOWN end
    C.rpcnet_request_fail(req, code, err.message or "")
  else
    C.rpcnet_request_fail(req, C.RPCNET_INTERNAL, tostring(err))
  end
end

local function run_task(task)
  local entry = task.entry
  local req = task.req
  local ctx = new_ctx(task)
  local ok, res = pcall(function()
    if entry.kind == "stream" then
      local stream = setmetatable({_task = task}, Stream)
      entry.fn(stream, ctx)
      return nil
    end
    local data = C.rpcnet_swig_request_data(req)
    if entry.kind == "raw" then
      return as_raw(entry.fn(data, ctx) or "", "handler result")
    end
    local ok2, v = pcall(decode, data)
    if not ok2 then
      if getmetatable(v) == Error then error(M.error(C.RPCNET_INVALID_ARGUMENT, "request: " .. v.message), 0) end
      error(v, 0)
    end
    local answer = entry.fn(v, ctx)
    local ok3, enc = pcall(encode, answer)
    if not ok3 then -- the handler's answer is outside the mapping: a server bug
      error(M.error(C.RPCNET_INTERNAL, "answer: " .. (getmetatable(enc) == Error and enc.message or tostring(enc))), 0)
    end
    return enc
  end)
  task.req = nil -- answered below: ctx and stream refuse further use
  if not ok then
    answer_error(req, res)
  elseif entry.kind == "stream" then
    C.rpcnet_request_finish(req, OK, nil)
  else
    C.rpcnet_request_reply(req, res)
  end
end

local function dispatch(self, req)
  local name = C.rpcnet_request_method(req)
  local entry = self._handlers[name]
  if not entry then
    C.rpcnet_request_fail(req, C.RPCNET_UNIMPLEMENTED, "method not handled: " .. name)
    return
  end
  local task = {req = req, entry = entry}
  task.co = coroutine.create(run_task)
  self._tasks[#self._tasks + 1] = task
  local prev = current_task
  current_task = task
  local ok, err = coroutine.resume(task.co, task)
  current_task = prev
  if not ok then -- run_task catches handler errors; this is a binding bug
    io.stderr:write("rpcnet: handler task failed: ", tostring(err), "\n")
  end
end

-- The fd a waiting task waits on: a client call's fd (wait_fd) when it
-- waits in a call it made, the request's send fd while it waits for room
-- to send, else the request's recv fd; background tasks only wait_fd.
local function task_fd(t)
  if t.wait_fd then return t.wait_fd end
  if not t.req then return nil end
  if t.wait_send then return C.rpcnet_request_send_fd(t.req) end
  return C.rpcnet_request_fd(t.req)
end

-- Resumes every waiting task once (round-robin) and drops finished ones.
local function step_tasks(self)
  local tasks, keep = self._tasks, {}
  for i = 1, #tasks do
    local task = tasks[i]
    if coroutine.status(task.co) == "suspended" then
      local prev = current_task
      current_task = task
      local ok, err = coroutine.resume(task.co)
      current_task = prev
      if not ok then io.stderr:write("rpcnet: handler task failed: ", tostring(err), "\n") end
    end
    if coroutine.status(task.co) ~= "dead" then keep[#keep + 1] = task end
  end
  -- tasks dispatched while resuming were appended after #tasks
  for i = #tasks + 1, #self._tasks do keep[#keep + 1] = self._tasks[i] end
  self._tasks = keep
end

-- Runs fn() as a background task of the loop (a coroutine that may yield
-- in calls, rpcnet.sleep, cl:next_event, ...); done() runs when it ends.
-- Errors are reported on stderr with a traceback: the loop goes on.
local function spawn(self, what, fn, done)
  local task = {bg = true}
  task.co = coroutine.create(function()
    local ok, err = xpcall(fn, debug.traceback)
    if done then done() end
    if not ok then io.stderr:write("rpcnet: ", what, " failed: ", tostring(err), "\n") end
  end)
  self._tasks[#self._tasks + 1] = task
  local prev = current_task
  current_task = task
  local ok, err = coroutine.resume(task.co)
  current_task = prev
  if not ok then io.stderr:write("rpcnet: ", what, " task failed: ", tostring(err), "\n") end
end

local function readable(fd) return fd >= 0 and C.poll({fd}, 0) > 0 end

-- The loop's first half: the fds to wait on (appended to fds) and the
-- wait in ms, at most `wait`: the server fd, every waiting task's fd (or
-- its wake-up time), watched fds and the fds of clusters with an event
-- handler (not while their callback still runs).
function server_prepare(self, fds, wait)
  fds[#fds + 1] = C.rpcnet_server_fd(self._h)
  local now = C.monotonic()
  for _, t in ipairs(self._tasks) do
    if t.wake_at then
      wait = math.max(0, math.min(wait, math.tointeger(math.ceil((t.wake_at - now) * 1000))))
    end
    if t.wait_fd then -- in a client call, perhaps with a timeout too
      fds[#fds + 1] = t.wait_fd
    elseif t.req and not t.wake_at then
      local fd = task_fd(t)
      if fd < 0 then wait = math.min(wait, 5) else fds[#fds + 1] = fd end
    end
  end
  for _, w in ipairs(self._watch) do
    if not w.busy then fds[#fds + 1] = w.fd end
  end
  for cl in pairs(self._clusters) do
    if cl._h and cl._on_event and not cl._ev_busy then fds[#fds + 1] = C.rpcnet_cluster_fd(cl._h) end
  end
  return wait
end

-- The second half: takes every queued call (dispatching each as a task),
-- starts the callbacks of readable watched fds and of clusters with events
-- queued, and resumes the waiting tasks. False once the server is shut
-- down and drained.
function server_process(self)
  local h = self._h
  local st, req = C.rpcnet_server_next(h, 0)
  local n = 0
  while st == OK do
    dispatch(self, req)
    n = n + 1
    if n >= 64 then break end
    st, req = C.rpcnet_server_next(h, 0)
  end
  if st == C.RPCNET_UNAVAILABLE then self._down = true end
  if #self._watch > 0 then
    for _, w in ipairs(table.move(self._watch, 1, #self._watch, 1, {})) do
      if not w.busy and not w.removed and readable(w.fd) then
        w.busy = true
        spawn(self, "watch callback for fd " .. w.fd, function() w.fn(w.fd) end, function() w.busy = false end)
      end
    end
  end
  if next(self._clusters) then
    local list = {}
    for cl in pairs(self._clusters) do list[#list + 1] = cl end
    for _, cl in ipairs(list) do
      if cl._h and cl._on_event and not cl._ev_busy and readable(C.rpcnet_cluster_fd(cl._h)) then
        cl._ev_busy = true
        spawn(self, "cluster event handler", function()
          while cl._h and cl._on_event do
            local ev = cl:next_event(0)
            if ev == nil then break end
            cl._on_event(ev, cl)
          end
        end, function() cl._ev_busy = false end)
      end
    end
  end
  if #self._tasks > 0 then step_tasks(self) end
  return st ~= C.RPCNET_UNAVAILABLE
end

-- One round of the loop: waits up to timeout_ms (default 100) for a new
-- call, progress on a waiting handler, a watched fd or a cluster event,
-- then handles what is ready. False once the server is shut down.
function Server:step(timeout_ms_)
  server_h(self)
  local fds = {}
  local wait = server_prepare(self, fds, timeout_ms_ or 100)
  C.poll(fds, wait)
  return server_process(self)
end

-- Calls fn(fd) from the loop whenever fd is readable (level-triggered),
-- as a background task: it may yield (client and cluster calls,
-- rpcnet.sleep); it is not started again while it runs. For stdin or a
-- pipe, read only what is there (io.stdin:setvbuf("no") then
-- io.read("l") reads one line without buffering the next) and unwatch at
-- EOF. Replaces an earlier watch of fd.
function Server:watch(fd, fn)
  server_h(self)
  if math.type(fd) ~= "integer" or fd < 0 then error("rpcnet: watch needs a file descriptor (integer >= 0)", 2) end
  if type(fn) ~= "function" then error("rpcnet: watch needs a function", 2) end
  self:unwatch(fd)
  self._watch[#self._watch + 1] = {fd = fd, fn = fn}
end
function Server:unwatch(fd)
  local keep = {}
  for _, w in ipairs(self._watch) do
    if w.fd == fd then w.removed = true else keep[#keep + 1] = w end
  end
  self._watch = keep
end

local link_cluster -- (Cluster section)

-- Serves until shutdown() (from a handler) or until opts.duration seconds
-- passed. Blocks the calling Lua state. opts.cluster = cl (with
-- opts.on_event = fn(event, cl), or cl:on_event(fn) set earlier): the loop
-- also waits on the cluster's event fd and runs the handler for every event
-- (a cluster attached to this server is served so without opts.cluster).
function Server:serve(opts)
  server_h(self)
  opts = opts or {}
  if opts.cluster then
    link_cluster(opts.cluster, self)
    if opts.on_event then opts.cluster:on_event(opts.on_event) end
  end
  local stop_at = opts.duration and (C.monotonic() + opts.duration) or nil
  self._stop = false
  self._serving = true
  self._break = false
  while not self._stop and not self._break do
    if not self:step(100) then break end
    if stop_at and C.monotonic() >= stop_at then break end
  end
  self._serving, self._break = false, false
  if self._stop then self:_do_shutdown() end
  if self._close_requested then self:close() end
end

function Server:_do_shutdown()
  local h = self._h
  if not h then return end
  -- let waiting handlers finish first (bounded by the drain timeout)
  local drain = self._drain or 2000
  local deadline = C.monotonic() + drain / 1000
  while #self._tasks > 0 and C.monotonic() < deadline do
    local fds = {}
    for _, t in ipairs(self._tasks) do
      local fd = task_fd(t)
      if fd and fd >= 0 then fds[#fds + 1] = fd end
    end
    C.poll(fds, 10)
    step_tasks(self)
  end
  C.rpcnet_server_shutdown(h, drain)
end

-- Makes serve() return after the current round, without shutting the
-- server down (serve() may be called again; waiting handlers stay
-- suspended until then).
function Server:stop()
  server_h(self)
  self._break = true
end

-- Stops the server. Inside serve() (from a handler) it takes effect when
-- the handler returns: serve() then drains and returns.
function Server:shutdown(drain_seconds)
  if not self._h then return end
  self._drain = drain_seconds and math.tointeger(math.floor(drain_seconds * 1000)) or 2000
  if self._serving then
    self._stop = true
  else
    self:_do_shutdown()
  end
end

function Server:close()
  local h = self._h
  if not h then return end
  if self._serving then
    self._stop = true
    self._close_requested = true
    return
  end
  self:_drop_clusters()
  self._h = nil
  C.rpcnet_server_free(h)
end
-- A cluster attached to this server must be freed before it (the C
-- contract); clusters only linked (serve{cluster = cl}) are unlinked.
function Server:_drop_clusters()
  for cl in pairs(self._clusters) do
    if cl._server == self then
      cl:close()
    elseif cl._servers then
      cl._servers[self] = nil
    end
  end
  self._clusters = {}
end
Server.__gc = function(self)
  local h = self._h
  if h then
    self:_drop_clusters()
    self._h = nil
    C.rpcnet_server_free(h)
  end
end
Server.__close = Server.close
function Server:closed() return self._h == nil end

---------------------------------------------------------------------------
-- Cluster (rpcnet_cluster_*: SWIM membership, tags, events, routed calls)
---------------------------------------------------------------------------
local Cluster = {__name = "rpcnet.Cluster"}
Cluster.__index = Cluster
M.Cluster = Cluster
M.CALL_IDEMPOTENT = C.RPCNET_CALL_IDEMPOTENT
M.CALL_HEDGE = C.RPCNET_CALL_HEDGE

local function cluster_h(self)
  if getmetatable(self) ~= Cluster then error("rpcnet: cluster method called without a cluster (use cl:method)", 3) end
  if not self._h then closed("cluster") end
  return self._h
end

-- The loop of srv serves cl's events (when cl has an event handler).
function link_cluster(cl, srv)
  cluster_h(cl)
  server_h(srv)
  srv._clusters[cl] = true
  cl._servers[srv] = true
end

-- rpcnet.cluster(opts): opts are config keys (node_name, gossip_bind,
-- gossip_advertise, rpc_advertise, cluster_keys, probe_interval_ms, ...,
-- and the TLS client keys used to call members: ca_file, server_name, ...),
-- plus server = a listening rpcnet.server to attach, tags = {k = v} to set,
-- on_event = fn(event, cl).
function M.cluster(opts)
  if opts ~= nil and type(opts) ~= "table" then error("rpcnet.cluster: option table expected", 2) end
  local cfgopts, srv, tags, on_event = {}, nil, nil, nil
  for k, v in pairs(opts or {}) do
    if k == "server" then srv = v
    elseif k == "tags" then tags = v
    elseif k == "on_event" then on_event = v
    else cfgopts[k] = v end
  end
  if srv ~= nil and getmetatable(srv) ~= Server then error("rpcnet.cluster: server must be an rpcnet.server", 2) end
  if tags ~= nil and type(tags) ~= "table" then error("rpcnet.cluster: tags must be a table", 2) end
  local cfg = make_config(cfgopts, "rpcnet.cluster")
  local h = C.rpcnet_cluster_new(cfg)
  local msg = C.rpcnet_last_error()
  C.rpcnet_config_free(cfg)
  if not h then
    local code = C.RPCNET_INVALID_ARGUMENT -- bad config or key
    if msg:find("^gossip socket") then code = C.RPCNET_UNAVAILABLE -- bind failed
    elseif msg:find("out of memory") or msg:find("cannot start") then code = C.RPCNET_RESOURCE_EXHAUSTED end
    raise(code, msg)
  end
  local cl = setmetatable({_h = h, _calls = setmetatable({}, {__mode = "k"}), _pending = {}, _servers = {},
                           _name = C.rpcnet_cluster_name(h)}, Cluster)
  local ok, err = pcall(function()
    if srv then cl:attach(srv) end
    for k, v in pairs(tags or {}) do cl:set_tag(k, v) end
    if on_event then cl:on_event(on_event) end
  end)
  if not ok then
    cl:close()
    error(err, 0)
  end
  return cl
end

-- Closes the node: pending routed calls are waited for (their deadline
-- bounds it), open streams closed, then rpcnet_cluster_free (no leave:
-- call leave() first for a graceful exit). Harmless twice.
function Cluster:close()
  local h = self._h
  if not h then return end
  self._h = nil
  for cc in pairs(self._pending) do
    self._pending[cc] = nil
    pcall(C.cluster_call_finish, cc) -- joins its thread (finalized already: nothing to do)
  end
  for call in pairs(self._calls) do call:close() end
  for srv in pairs(self._servers) do
    if srv._clusters then srv._clusters[self] = nil end
  end
  self._servers, self._server = {}, nil
  C.rpcnet_cluster_free(h)
end
Cluster.__gc = Cluster.close
Cluster.__close = Cluster.close
function Cluster:closed() return self._h == nil end
function Cluster:__tostring()
  return "rpcnet.Cluster(" .. tostring(self._name or "?") .. (self._h and ")" or ", closed)")
end

-- Attaches a listening server: members can call it, and it answers the
-- cluster's push-pull. Its serve() loop then also runs the event handler.
-- Closing the server closes this cluster first (the server must outlive it).
function Cluster:attach(srv)
  local h = cluster_h(self)
  if getmetatable(srv) ~= Server then error("rpcnet: attach needs an rpcnet.server", 2) end
  local sh = server_h(srv)
  local st = C.rpcnet_cluster_attach_server(h, sh)
  if st ~= OK then raise_last(st) end
  self._server = srv
  link_cluster(self, srv)
end

function Cluster:name()
  local n = C.rpcnet_cluster_name(cluster_h(self))
  self._name = n
  return n
end
function Cluster:gossip_port() return C.rpcnet_cluster_gossip_port(cluster_h(self)) end
function Cluster:fd() return C.rpcnet_cluster_fd(cluster_h(self)) end

-- Sets a tag (value nil removes it); gossiped at once.
function Cluster:set_tag(key, value)
  local h = cluster_h(self)
  if type(key) ~= "string" then error("rpcnet: set_tag needs a string key", 2) end
  if value ~= nil then
    if type(value) == "number" then value = tostring(math.tointeger(value) or value) end
    if type(value) ~= "string" then error("rpcnet: tag value must be a string, a number or nil", 2) end
  end
  local st = C.rpcnet_cluster_set_tag(h, key, value)
  if st ~= OK then raise_last(st) end
end

-- A filter: "k=v,k2=v2" ("k" presence, "k!=v"), or a table {k = v} (every
-- pair must match; sorted into the string form), or nil for every member.
local function filter_of(f, level)
  if f == nil or type(f) == "string" then return f end
  if type(f) ~= "table" then error("rpcnet: filter must be a string or a table", level + 1) end
  local parts = {}
  for k, v in pairs(f) do
    if type(k) ~= "string" then error("rpcnet: filter keys must be strings", level + 1) end
    parts[#parts + 1] = v == true and k or (k .. "=" .. tostring(v))
  end
  table.sort(parts)
  return table.concat(parts, ",")
end

-- Joins through seeds: "host:port,host:port" or a list of "host:port".
-- Blocks until one push-pull completed (join_timeout_ms). Raises
-- PERMISSION_DENIED (a seed refused this node's cluster key: the message
-- names the seed and cluster_keys), UNAVAILABLE, INVALID_ARGUMENT.
function Cluster:join(seeds)
  local h = cluster_h(self)
  if type(seeds) == "table" then seeds = table.concat(seeds, ",") end
  if type(seeds) ~= "string" then error("rpcnet: join needs seeds (a string or a list)", 2) end
  local st = C.rpcnet_cluster_join(h, seeds)
  if st ~= OK then raise_last(st) end
  return true
end

-- Leaves gracefully, waiting up to timeout seconds (default 2) for the
-- leave to be gossiped; raises DEADLINE_EXCEEDED when not confirmed in
-- time (the others still learn it). The node answers until closed.
function Cluster:leave(timeout)
  local h = cluster_h(self)
  local ms = timeout == nil and 2000 or ms_of(timeout)
  local st = C.rpcnet_cluster_leave(h, ms)
  if st ~= OK then raise_last(st) end
  return true
end

-- The members whose tags match filter, this node included: a list of
-- {name, gossip_addr, rpc_addr, state, incarnation, tags = {k = v}, self,
-- inflight, latency_us, phi, breaker}.
-- Replaces the keyring without a restart: "new,old" or a list {new, old}
-- (the first key seals, all open). Rotation with no downtime: on every node
-- {old, new}, then {new, old}, then {new}. A bad key raises INVALID_ARGUMENT
-- and leaves the keyring unchanged.
function Cluster:set_keys(keys)
  local h = cluster_h(self)
  if type(keys) == "table" then keys = table.concat(keys, ",") end
  if type(keys) ~= "string" then error("rpcnet: set_keys needs a string or a list of keys", 2) end
  local st = C.rpcnet_cluster_set_keys(h, keys)
  if st ~= OK then raise_last(st) end
end

-- This node's counters {pkts_in = ..., auth_failures = ..., health = ...,
-- incarnation = ..., members = ..., ...} for metrics.
function Cluster:stats()
  local h = cluster_h(self)
  local st, data = C.rpcnet_cluster_stats(h)
  if st ~= OK then raise_last(st) end
  return decode(data)
end

function Cluster:members(filter)
  local h = cluster_h(self)
  local st, data = C.rpcnet_cluster_members(h, filter_of(filter, 2))
  if st ~= OK then raise_last(st) end
  return decode(data)
end

-- The next membership event {type = ..., member = {...}} (no member for
-- "partitioned"/"healed"), or nil when none came within timeout seconds
-- (nil or 0: do not wait; negative or math.huge: wait for ever). Inside a
-- serve() task it yields while waiting; outside, this state's idle servers
-- keep serving.
function Cluster:next_event(timeout)
  local h = cluster_h(self)
  if timeout ~= nil and (type(timeout) ~= "number" or timeout ~= timeout) then
    error("timeout must be a number of seconds", 2)
  end
  local forever = timeout ~= nil and (timeout < 0 or timeout == math.huge)
  local st, data = C.rpcnet_cluster_next_event(h, 0)
  if st == OK then return decode(data) end
  if timeout == nil or timeout == 0 then return nil end
  local wake = (not forever) and (C.monotonic() + timeout) or nil
  local wait = waiter(true)
  if wait then
    while true do
      if wake and C.monotonic() >= wake then return nil end
      wait(C.rpcnet_cluster_fd(h), wake)
      h = cluster_h(self)
      st, data = C.rpcnet_cluster_next_event(h, 0)
      if st == OK then return decode(data) end
    end
  end
  st, data = C.rpcnet_cluster_next_event(h, forever and -1 or ms_of(timeout))
  if st == OK then return decode(data) end
  return nil
end

-- for ev in cl:events(timeout) do ... end: events until none comes within
-- timeout seconds (default 0: the queued ones).
function Cluster:events(timeout)
  cluster_h(self)
  return function() return self:next_event(timeout) end
end

-- fn(event, cl) is run by the serve() loop of the attached server (or of a
-- server serving with {cluster = cl}) for every event, as a loop task (it
-- may yield: calls, rpcnet.sleep). nil removes it.
function Cluster:on_event(fn)
  cluster_h(self)
  if fn ~= nil and type(fn) ~= "function" then error("rpcnet: on_event needs a function or nil", 2) end
  self._on_event = fn
end

-- A routed unary call. Outside serve() with no server of this state to
-- keep serving: one blocking rpcnet_cluster_call_ex. Otherwise (inside a
-- serve() task, or while this state's servers must keep answering: a
-- call routed to another node of this state, or one that calls back into
-- it; a node never routes to itself) the call runs on a C thread
-- (cluster_call_start) and the state waits on its pipe: yielding to the
-- loop in a task, serving the idle servers outside one. Same semantics
-- either way (strategy, idempotent retries, hedging, member name).
local function cluster_unary(self, method, data, opts)
  local h = cluster_h(self)
  if type(method) ~= "string" then error("rpcnet: method name string expected", 3) end
  opts = opts or {}
  if type(opts) ~= "table" then error("rpcnet: options must be a table", 3) end
  local filter = filter_of(opts.filter, 3)
  local flags = 0
  if opts.idempotent or opts.hedge then flags = flags | C.RPCNET_CALL_IDEMPOTENT end
  if opts.hedge then flags = flags | C.RPCNET_CALL_HEDGE end
  local tms = timeout_ms(opts.timeout)
  local wait = waiter(true)
  local st, resp, member, msg
  if wait then
    local cc, why = C.cluster_call_start(h, filter, method, data, tms, flags)
    if not cc then raise(C.RPCNET_RESOURCE_EXHAUSTED, why) end
    self._pending[cc] = true
    local fd = C.cluster_call_fd(cc)
    while not readable(fd) do
      wait(fd)
      if not self._pending[cc] then closed("cluster") end -- closed meanwhile (and cc finished)
    end
    self._pending[cc] = nil
    st, resp, member, msg = C.cluster_call_finish(cc)
  else
    st, resp, member = C.rpcnet_swig_cluster_call(h, filter, method, data, tms, flags)
    msg = C.rpcnet_last_error()
  end
  if st ~= OK then
    local e = M.error(st, msg)
    if member ~= "" then e.member = member end
    error(e, 0)
  end
  return resp or "", member
end

-- cl:call_raw(method, bytes, opts) -> response string, member name
-- cl:call(method, value, opts) -> decoded response, member name
-- opts: filter ("k=v,..." or {k = v}), timeout (seconds), idempotent
-- (retried on another member after UNAVAILABLE or a broken connection),
-- hedge (implies idempotent: a second attempt when the first is slow).
-- Failures raise the error value, with .member when a member answered.
function Cluster:call_raw(method, data, opts)
  return cluster_unary(self, method, as_raw(data, "call_raw"), opts)
end
function Cluster:call(method, value, opts)
  local resp, member = cluster_unary(self, method, encode(value), opts)
  return decode(resp), member
end

-- A streaming call on a member chosen as for call (rpcnet_cluster_start;
-- never retried): the binding's call object (send, recv, close_send,
-- messages, ...). opts: filter, timeout, metadata. Its waits yield in a
-- serve() task and keep this state's idle servers serving outside one.
function Cluster:stream(method, opts)
  local h = cluster_h(self)
  if type(method) ~= "string" then error("rpcnet: method name string expected", 2) end
  opts = opts or {}
  local ch = C.rpcnet_cluster_start(h, filter_of(opts.filter, 2), method, timeout_ms(opts.timeout))
  if not ch then raise_last(C.RPCNET_UNAVAILABLE, "no member to call") end
  return wrap_call(self, ch, method, opts, true)
end
Cluster.bidi = Cluster.stream

return M
