#!/usr/bin/env bash
# The rockspec, for real: `luarocks make` of bindings/lua/rpcnet-scm-1.rockspec
# into a throw-away tree under BUILD_DIR against the build tree's librpcnet
# and header (RPCNET_LIBDIR/RPCNET_INCDIR), then a smoke test that requires
# rpcnet from that tree only (LUA_PATH/LUA_CPATH from `luarocks path`) and
# makes real calls. Part of make test-lua.
#
#   bash bindings/lua/tests/rock.sh BUILD_DIR CERT_DIR
set -euo pipefail
build=$(cd "${1:?usage: rock.sh BUILD_DIR CERT_DIR}" && pwd)
certs=$(cd "${2:?usage: rock.sh BUILD_DIR CERT_DIR}" && pwd)
repo=$(cd "$(dirname "$0")/../../.." && pwd)
command -v luarocks >/dev/null || { echo "rock.sh: luarocks missing (make deps installs it)" >&2; exit 1; }
lr=(luarocks --lua-version 5.4)

# luarocks make builds in the current directory: build in a copy of the
# sources it reads (bindings/lua and swig, same relative layout) so the
# work tree stays clean.
top="$build/lua-rock"
rm -rf "$top"
mkdir -p "$top/src/bindings"
cp -r "$repo/bindings/lua" "$top/src/bindings/lua"
cp -r "$repo/swig" "$top/src/swig"
rm -f "$top/src/bindings/lua/_rpcnet_c.so" "$top/src/bindings/lua/rpcnet_lua_wrap.c"

echo "rock.sh: luarocks make into $top/tree"
(cd "$top/src/bindings/lua" &&
  "${lr[@]}" --tree "$top/tree" make rpcnet-scm-1.rockspec \
    RPCNET_INCDIR="$repo/capi/include" RPCNET_LIBDIR="$build/capi") >"$top/make.log" 2>&1 ||
  { cat "$top/make.log" >&2; echo "rock.sh: luarocks make failed" >&2; exit 1; }
"${lr[@]}" --tree "$top/tree" list --porcelain | grep -q '^rpcnet	scm-1	installed' ||
  { echo "rock.sh: rpcnet is not listed in the tree" >&2; exit 1; }

# Only the tree's paths (luarocks path adds ./?.lua: run from elsewhere).
eval "$("${lr[@]}" --tree "$top/tree" path)"
cd "$top"
RPCNET_ROCK_TREE="$top/tree" lua5.4 "$repo/bindings/lua/tests/rock_smoke.lua" "$certs"
