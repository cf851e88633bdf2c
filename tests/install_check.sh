#!/usr/bin/env bash
# Installs the build into a temporary prefix and builds a program against it
# twice: through pkg-config and through find_package(rpcnet). Fails when the
# installed header, library, SONAME, rpcnet.pc or CMake package is broken.
set -euo pipefail
build=$1 src=$2
d=$(mktemp -d)
trap 'rm -rf "$d"' EXIT
cmake --install "$build" --prefix "$d/prefix" >/dev/null
readelf -d "$d/prefix/lib/librpcnet.so" | grep -q 'SONAME.*librpcnet.so.0'
cat > "$d/app.c" <<'C'
#include <rpcnet/rpcnet.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  rpcnet_config *c = rpcnet_config_new();
  int bad = rpcnet_config_set(c, "nope", "1");
  rpcnet_config_free(c);
  printf("%s %s %s\n", rpcnet_version(), rpcnet_status_name(bad), rpcnet_last_error());
  return bad == RPCNET_INVALID_ARGUMENT && strstr(rpcnet_last_error(), "nope") ? 0 : 1;
}
C
export PKG_CONFIG_PATH="$d/prefix/lib/pkgconfig"
cc -std=c11 -Wall -Werror "$d/app.c" -o "$d/app-pc" $(pkg-config --cflags --libs rpcnet)
LD_LIBRARY_PATH="$d/prefix/lib" "$d/app-pc"
mkdir -p "$d/cm"
cat > "$d/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.18)
project(app C)
find_package(rpcnet REQUIRED)
add_executable(app ../app.c)
target_link_libraries(app PRIVATE rpcnet::rpcnet)
CM
cmake -S "$d/cm" -B "$d/cm/build" -DCMAKE_PREFIX_PATH="$d/prefix" >/dev/null
cmake --build "$d/cm/build" >/dev/null
LD_LIBRARY_PATH="$d/prefix/lib" "$d/cm/build/app"
echo "install check: pkg-config and find_package both work"
