// echo-server answers "echo" with its request: go run ./echo-server -cert server.pem -key server-key.pem
package main

import (
	"context"
	"flag"
	"log"
	"os/signal"
	"syscall"

	rpcnet "github.com/rpcnet/rpcnet/bindings/go"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7000", "listen address")
	cert := flag.String("cert", "server.pem", "certificate chain (PEM)")
	key := flag.String("key", "server-key.pem", "private key (PEM)")
	flag.Parse()
	s, err := rpcnet.NewServer(rpcnet.Config{CertFile: *cert, KeyFile: *key})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	s.Handle("echo", func(ctx context.Context, req *rpcnet.Request) (any, error) {
		return rpcnet.RawMessage(req.Raw()), nil
	})
	port, err := s.Listen(*addr)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("echo server on port %d (rpcnet %s)", port, rpcnet.Version())
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s.Serve(ctx)
}
