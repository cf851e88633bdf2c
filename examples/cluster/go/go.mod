module github.com/rpcnet/rpcnet/examples/cluster/go

go 1.22

require github.com/rpcnet/rpcnet/bindings/go v0.0.0

replace github.com/rpcnet/rpcnet/bindings/go => ../../../bindings/go
