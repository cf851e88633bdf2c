// echo-client calls "echo": go run ./echo-client -ca ca.pem hello
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"time"

	rpcnet "github.com/rpcnet/rpcnet/bindings/go"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:7000", "server address")
	ca := flag.String("ca", "ca.pem", "trusted CA (PEM)")
	name := flag.String("server-name", "localhost", "name the server certificate must carry")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := rpcnet.Dial(ctx, *addr, rpcnet.Config{CAFile: *ca, ServerName: *name})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var out any
	if err := c.Call(ctx, "echo", flag.Args(), &out); err != nil {
		log.Fatal(err)
	}
	fmt.Println(out)
}
