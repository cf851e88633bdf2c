// Package capi is the SWIG-generated binding of the rpcnet C API, used by
// package rpcnet (bindings/go); nothing here is public API. capi.go and
// capi_wrap.c are generated from capi.i (swig/rpcnet.i + swig/go.i) by
// generate.sh: the build runs it, or `go generate ./...` by hand.
//
// rpcnet_last_error is thread-local: read it (Rpcnet_last_error) with the
// goroutine locked to its thread (runtime.LockOSThread) since before the
// call that failed.
package capi

//go:generate sh generate.sh

// #cgo pkg-config: rpcnet
import "C"
