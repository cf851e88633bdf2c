// cluster_worker_go: an rpcnet server that joins a cluster and serves
// "work", the Go twin of examples/cluster/c/worker.c (same command line,
// same output, so scripts drive either).
//
//	cluster_worker_go --name NAME --cert F --key F --ca F
//	                  [--gossip HOST:PORT] [--listen HOST:PORT] [--join SEEDS]
//	                  [--keys KEYS] [--tag k=v]... [--lang L] [--probe-ms N]
//
// Methods:
//
//	work    answers the raw bytes "<lang>:<name>:" followed by the request
//	whoami  answers the node name
//
// Tags: role=worker, lang=<lang> (default go) and every --tag. Prints
// "ready NAME gossip PORT rpc PORT" once joined, then one line per
// membership event ("event TYPE MEMBER STATE", "-" for partitioned and
// healed). Commands on stdin, one per line:
//
//	tag K=V      sets a tag (gossiped); prints "tagged K=V"
//	untag K      removes it
//	members      prints "member NAME STATE LANG" lines and "members end"
//	leave        leaves gracefully (2 s), prints "left STATUS", exits 0
//
// SIGTERM and SIGINT also leave gracefully; EOF on stdin is ignored. A
// failed join prints the error on stderr and exits 3; bad arguments exit 2.
//
// Build: make build (CMake writes build/examples/cluster_worker_go), or
// `go build` here with PKG_CONFIG_PATH=<build>/go-pkgconfig.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	rpcnet "github.com/rpcnet/rpcnet/bindings/go"
)

type tagList []string

func (t *tagList) String() string     { return strings.Join(*t, ",") }
func (t *tagList) Set(v string) error { *t = append(*t, v); return nil }

func fail(code int, format string, a ...any) {
	fmt.Fprintf(os.Stderr, "cluster_worker_go: "+format+"\n", a...)
	os.Exit(code)
}

func main() {
	name := flag.String("name", fmt.Sprintf("worker-%d", os.Getpid()), "node name")
	cert := flag.String("cert", "", "server certificate chain (PEM)")
	key := flag.String("key", "", "server private key (PEM)")
	ca := flag.String("ca", "", "CA certificate (PEM) for calls to members")
	gossip := flag.String("gossip", "127.0.0.1:0", "gossip bind address")
	listen := flag.String("listen", "127.0.0.1:0", "RPC listen address")
	join := flag.String("join", "", "seeds: gossip addresses, comma-separated")
	keys := flag.String("keys", "", "cluster keys, comma-separated (the first seals)")
	lang := flag.String("lang", "go", "value of the lang tag and answer prefix")
	probeMS := flag.Int("probe-ms", 0, "probe interval in ms (0: library default)")
	var tags tagList
	flag.Var(&tags, "tag", "k=v tag (repeatable)")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(2, "unexpected argument %s", flag.Arg(0))
	}
	if *cert == "" || *key == "" || *ca == "" {
		fail(2, "usage: cluster_worker_go --name N --cert F --key F --ca F [...]")
	}

	// Signals first: a SIGTERM during the join still leaves gracefully.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	tls := rpcnet.Config{CertFile: *cert, KeyFile: *key, CAFile: *ca, ServerName: "localhost"}
	srv, err := rpcnet.NewServer(tls)
	if err != nil {
		fail(1, "server: %v", err)
	}
	prefix := *lang + ":" + *name + ":"
	srv.Handle("work", func(ctx context.Context, req *rpcnet.Request) (any, error) {
		out := make([]byte, 0, len(prefix)+len(req.Raw()))
		return rpcnet.RawMessage(append(append(out, prefix...), req.Raw()...)), nil
	})
	srv.Handle("whoami", func(ctx context.Context, req *rpcnet.Request) (any, error) {
		return rpcnet.RawMessage(*name), nil
	})
	rpcPort, err := srv.Listen(*listen)
	if err != nil {
		fail(1, "listen: %v", err)
	}
	serveCtx, stopServe := context.WithCancel(context.Background())
	go srv.Serve(serveCtx)

	cfg := rpcnet.ClusterConfig{NodeName: *name, GossipBind: *gossip, Config: tls}
	if *keys != "" {
		cfg.Keys = strings.Split(*keys, ",")
	}
	if *probeMS > 0 {
		cfg.ProbeInterval = time.Duration(*probeMS) * time.Millisecond
	}
	cl, err := rpcnet.NewCluster(cfg)
	if err != nil {
		fail(1, "cluster: %v", err)
	}
	if err := cl.AttachServer(srv); err != nil {
		fail(1, "attach: %v", err)
	}
	for _, kv := range append([]string{"role=worker", "lang=" + *lang}, tags...) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if err := cl.SetTag(k, v); err != nil {
			fail(1, "tag %s: %v", kv, err)
		}
	}
	if *join != "" {
		if err := cl.Join(context.Background(), *join); err != nil {
			fmt.Fprintf(os.Stderr, "cluster_worker_go: join failed: %v\n", err)
			cl.Close()
			srv.Close()
			os.Exit(3)
		}
	}
	// os.Stdout is unbuffered: every line is written (flushed) at once, and
	// only this goroutine writes to it.
	fmt.Printf("ready %s gossip %d rpc %d\n", cl.Name(), cl.GossipPort(), rpcPort)

	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines) // EOF (or a read error): keep serving
	}()
	events := cl.Events()
loop:
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				break loop
			}
			who, state := "-", "-"
			if ev.Member != nil {
				who, state = ev.Member.Name, ev.Member.State
			}
			fmt.Printf("event %s %s %s\n", ev.Type, who, state)
		case <-sigs:
			break loop
		case line, ok := <-lines:
			if !ok {
				lines = nil
				continue
			}
			if command(cl, strings.TrimRight(line, "\r")) {
				break loop
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err = cl.Leave(ctx)
	cancel()
	fmt.Printf("left %s\n", rpcnet.CodeOf(err))
	cl.Close()
	sctx, cancel := context.WithTimeout(context.Background(), time.Second)
	srv.Shutdown(sctx)
	cancel()
	stopServe()
	srv.Close()
}

// command runs one stdin command; true means leave.
func command(cl *rpcnet.Cluster, line string) bool {
	switch {
	case strings.HasPrefix(line, "tag "):
		k, v, ok := strings.Cut(line[4:], "=")
		if !ok {
			return false
		}
		if err := cl.SetTag(k, v); err != nil {
			fmt.Fprintf(os.Stderr, "cluster_worker_go: set_tag: %v\n", err)
			return false
		}
		fmt.Printf("tagged %s=%s\n", k, v)
	case strings.HasPrefix(line, "untag "):
		if err := cl.DeleteTag(line[6:]); err != nil {
			fmt.Fprintf(os.Stderr, "cluster_worker_go: untag: %v\n", err)
		}
	case line == "members":
		ms, err := cl.Members("")
		if err != nil {
			fmt.Fprintf(os.Stderr, "cluster_worker_go: members: %v\n", err)
		}
		for _, m := range ms {
			lang := m.Tags["lang"]
			if lang == "" {
				lang = "-"
			}
			fmt.Printf("member %s %s %s\n", m.Name, m.State, lang)
		}
		fmt.Println("members end")
	case line == "leave":
		return true
	}
	return false
}
