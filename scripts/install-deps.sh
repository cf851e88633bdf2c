#!/usr/bin/env bash
# Installs what rpcnet needs to build and test, from Debian packages only.
# Idempotent: does nothing when everything is present. Both README commands
# (make demo, make test) call it, so a fresh machine needs nothing else.
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config
  libngtcp2-dev libngtcp2-crypto-gnutls-dev   # QUIC (0.12.x)
  libgnutls28-dev gnutls-bin                  # TLS 1.3; certtool for test PKI
  libcbor-dev                                 # CBOR
  libuv1-dev                                  # event loop
  libnghttp3-dev                              # HTTP/3 gateway (later)
  clang libclang-rt-14-dev clang-format       # fuzz targets, formatting
  lua5.4 liblua5.4-dev swig                   # bindings
  luarocks                                    # Lua rockspec (make test-lua: luarocks make)
  python3-dev python3-venv python3-pytest     # Python binding (make test-python)
  python3-setuptools python3-wheel
  iptables                                    # cluster partition test (make test-cluster)
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
