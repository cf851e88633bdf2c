// Cross-language smoke server (Go). Usage: server CERT KEY
package main

import (
	"context"
	"fmt"
	"os"

	rpcnet "github.com/rpcnet/rpcnet/bindings/go"
)

func num(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case uint64:
		return int64(x)
	}
	return 0
}

func main() {
	s, err := rpcnet.NewServer(rpcnet.Config{CertFile: os.Args[1], KeyFile: os.Args[2]})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	s.Handle("echo", func(ctx context.Context, r *rpcnet.Request) (any, error) {
		var v any
		err := r.Decode(&v)
		return v, err
	})
	s.Handle("add", func(ctx context.Context, r *rpcnet.Request) (any, error) {
		var v map[string]any
		if err := r.Decode(&v); err != nil {
			return nil, err
		}
		return map[string]any{"sum": num(v["a"]) + num(v["b"])}, nil
	})
	port, err := s.Listen("127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("PORT %d\n", port)
	if err := s.Serve(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
