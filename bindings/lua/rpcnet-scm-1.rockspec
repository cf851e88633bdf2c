-- cd bindings/lua && luarocks make rpcnet-scm-1.rockspec  (needs swig and an
-- installed librpcnet: make install). Builds _rpcnet_c with SWIG from
-- ../../swig/rpcnet.i and installs rpcnet.lua and rpcnet/cbor.lua.
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
  build_command = [[
    swig -lua -nomoduleglobal -I$(RPCNET_INCDIR) -I../../capi/include -I../../swig \
      -o rpcnet_lua_wrap.c ../../swig/rpcnet.i &&
    $(CC) $(CFLAGS) -shared -fPIC -I$(LUA_INCDIR) -I$(RPCNET_INCDIR) -I../../capi/include \
      rpcnet_lua_wrap.c -o _rpcnet_c.so -Wl,-z,nodelete -L$(RPCNET_LIBDIR) -lrpcnet
  ]],
  install = {
    lib = { ["_rpcnet_c"] = "_rpcnet_c.so" },
    lua = { ["rpcnet"] = "rpcnet.lua", ["rpcnet.cbor"] = "rpcnet/cbor.lua" },
  },
}
