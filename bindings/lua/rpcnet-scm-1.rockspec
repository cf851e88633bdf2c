-- luarocks --lua-version 5.4 make rpcnet-scm-1.rockspec, run in bindings/lua
-- (it builds in the current directory and reaches ../../swig). Needs swig
-- and librpcnet with its header: installed (make install), or the build
-- tree's, named with RPCNET_INCDIR=<repo>/capi/include
-- RPCNET_LIBDIR=<build>/capi (make test-lua does that into a throw-away
-- tree: bindings/lua/tests/rock.sh). Builds _rpcnet_c with SWIG from
-- ../../swig/rpcnet.i (+ lua.i), with an rpath to RPCNET_LIBDIR, and
-- installs it with rpcnet.lua and rpcnet/cbor.lua.
rockspec_format = "3.0"
package = "rpcnet"
version = "scm-1"
source = { url = "git+file://." }
description = {
  summary = "RPC over QUIC (ngtcp2 + GnuTLS) with a CBOR wire format: Lua 5.4 binding",
  license = "See LICENSE",
}
dependencies = { "lua >= 5.4" }
external_dependencies = {
  RPCNET = { header = "rpcnet/rpcnet.h", library = "rpcnet" },
}
build = {
  type = "command",
  -- -z nodelete: lua_close() must not unload the module (and librpcnet)
  -- under the library's I/O threads (README, "Known issues").
  build_command = [[
    swig -lua -nomoduleglobal -I$(RPCNET_INCDIR) -I../../swig \
      -o rpcnet_lua_wrap.c ../../swig/rpcnet.i &&
    $(CC) $(CFLAGS) $(LIBFLAG) -I$(LUA_INCDIR) -I$(RPCNET_INCDIR) \
      rpcnet_lua_wrap.c -o _rpcnet_c.so -Wl,-z,nodelete \
      -L$(RPCNET_LIBDIR) -Wl,-rpath,$(RPCNET_LIBDIR) -lrpcnet
  ]],
  install = {
    lib = { ["_rpcnet_c"] = "_rpcnet_c.so" },
    lua = { ["rpcnet"] = "rpcnet.lua", ["rpcnet.cbor"] = "rpcnet/cbor.lua" },
  },
}
