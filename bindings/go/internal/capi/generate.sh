#!/bin/sh
# Generates this package's capi.go and capi_wrap.c with SWIG-Go from capi.i
# (which includes swig/rpcnet.i and, through it, swig/go.i). Run by the
# build (bindings/go/CMakeLists.txt, when any of those or rpcnet.h change)
# and by `go generate ./...`. The outputs are not committed.
set -e
cd "$(dirname "$0")"
repo=../../../..
mkdir -p .tmp-swig
${SWIG:-swig} -go -cgo -intgosize 64 -module capi \
  -I"$repo/swig" -I"$repo/capi/include" \
  -o capi_wrap.c.tmp -outdir .tmp-swig capi.i 2>&1 || { rm -rf capi_wrap.c.tmp .tmp-swig; exit 1; }
mv .tmp-swig/capi.go capi.go
if command -v gofmt >/dev/null; then gofmt -w capi.go; fi
mv capi_wrap.c.tmp capi_wrap.c
rmdir .tmp-swig
