// Cross-language smoke client (Go). Usage: client CA ADDR
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"

	rpcnet "github.com/rpcnet/rpcnet/bindings/go"
)

func fail(f string, a ...any) {
	fmt.Fprintf(os.Stderr, f+"\n", a...)
	os.Exit(1)
}

func main() {
	ctx := context.Background()
	c, err := rpcnet.Dial(ctx, os.Args[2], rpcnet.Config{CAFile: os.Args[1], ServerName: "localhost"})
	if err != nil {
		fail("dial: %v", err)
	}
	defer c.Close()
	value := map[string]any{"text": "h\u00e9llo \u263a", "n": -5, "big": int64(1) << 40, "f": 1.5,
		"list": []any{1, "two", true}, "raw": []byte{0, 1, 0xff}}
	sent, err := rpcnet.Marshal(value)
	if err != nil {
		fail("marshal: %v", err)
	}
	got, err := c.CallRaw(ctx, "echo", sent)
	if err != nil {
		fail("echo: %v", err)
	}
	if !bytes.Equal(got, sent) {
		fail("echo bytes differ: sent %x got %x", sent, got)
	}
	var sum map[string]any
	if err := c.Call(ctx, "add", map[string]any{"a": 3, "b": 4}, &sum); err != nil {
		fail("add: %v", err)
	}
	if fmt.Sprint(sum["sum"]) != "7" {
		fail("add gave %v", sum)
	}
	fmt.Println("ok")
}
