module github.com/rpcnet/rpcnet/bindings/go

go 1.22
