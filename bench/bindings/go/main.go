// Go row of bench/bindings/run.sh: unary 64 B round trips, one in flight.
//
//	go run . CA_FILE ADDR CALLS   ->  prints "p50_us p99_us"
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"time"

	rpcnet "github.com/rpcnet/rpcnet/bindings/go"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: rtt CA_FILE ADDR CALLS")
		os.Exit(2)
	}
	n, _ := strconv.Atoi(os.Args[3])
	ctx := context.Background()
	c, err := rpcnet.Dial(ctx, os.Args[2], rpcnet.Config{CAFile: os.Args[1], ServerName: "localhost"})
	if err != nil {
		fmt.Fprintln(os.Stderr, "rtt:", err)
		os.Exit(1)
	}
	defer c.Close()
	payload := make([]byte, 64)
	times := make([]float64, 0, n)
	for i := 0; i < n+n/10; i++ { // the first tenth warms up
		t0 := time.Now()
		if _, err := c.CallRaw(ctx, "echo", payload); err != nil {
			fmt.Fprintln(os.Stderr, "rtt:", err)
			os.Exit(1)
		}
		if i >= n/10 {
			times = append(times, float64(time.Since(t0).Nanoseconds())/1000)
		}
	}
	sort.Float64s(times)
	fmt.Printf("%.1f %.1f\n", times[n/2], times[int(float64(n)*0.99)])
}
