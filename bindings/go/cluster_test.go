package rpcnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// The cluster API end to end in one process over loopback (as
// tests/c/test_cluster_api.c): real UDP gossip sealed with a cluster key,
// real QUIC push-pull and calls, fast failure-detector settings. Waits are
// bounded polls that fail the test when they run out.

const testKey = "0123456789abcdef0123456789abcdef"

type testNode struct {
	c    *Cluster
	s    *Server // nil for a node without a server
	name string
}

func nodeConfig(name, key string) ClusterConfig {
	cc := ClusterConfig{
		NodeName: name, GossipBind: "127.0.0.1:0",
		ProbeInterval: 200 * time.Millisecond, ProbeTimeout: 100 * time.Millisecond,
		GossipInterval: 50 * time.Millisecond, JoinTimeout: 3 * time.Second,
		Config: Config{CAFile: cert("ca.pem"), ServerName: "localhost"},
	}
	if key != "" {
		cc.Keys = []string{key}
	}
	return cc
}

// startNode starts a node; with a server it serves "work" (answering
// "<name>:" + the request), "hello" (CBOR: "<name> greets <in>"),
// "slow" (sleeps the request's ms) and the stream "upper", and has the tag
// role=worker.
func startNode(t *testing.T, name, key string, withServer bool, mods ...func(*ClusterConfig)) *testNode {
	t.Helper()
	n := &testNode{name: name}
	if withServer {
		s, err := NewServer(Config{CertFile: cert("server.pem"), KeyFile: cert("server-key.pem")})
		if err != nil {
			t.Fatal(err)
		}
		n.s = s
		s.Handle("work", func(ctx context.Context, r *Request) (any, error) {
			return RawMessage(append([]byte(name+":"), r.Raw()...)), nil
		})
		s.Handle("hello", func(ctx context.Context, r *Request) (any, error) {
			var in string
			if err := r.Decode(&in); err != nil {
				return nil, err
			}
			return name + " greets " + in, nil
		})
		s.Handle("slow", func(ctx context.Context, r *Request) (any, error) {
			var ms int
			r.Decode(&ms)
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(ms) * time.Millisecond):
			}
			return name, nil
		})
		s.HandleStream("upper", func(ctx context.Context, st *ServerStream) error {
			who, _ := st.Metadata("x-who")
			for {
				b, err := st.RecvRaw()
				if err == io.EOF {
					return st.SendRaw([]byte(name + "/" + who))
				}
				if err != nil {
					return err
				}
				if err := st.SendRaw([]byte(strings.ToUpper(string(b)))); err != nil {
					return err
				}
			}
		})
		if _, err := s.Listen("127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go s.Serve(ctx)
		t.Cleanup(func() { cancel(); s.Close() })
	}
	cc := nodeConfig(name, key)
	for _, m := range mods {
		m(&cc)
	}
	c, err := NewCluster(cc)
	if err != nil {
		t.Fatal(err)
	}
	n.c = c
	t.Cleanup(func() { c.Close() }) // runs before the server's Close
	if withServer {
		if err := c.AttachServer(n.s); err != nil {
			t.Fatal(err)
		}
		if err := c.SetTag("role", "worker"); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func (n *testNode) seed() string { return fmt.Sprintf("127.0.0.1:%d", n.c.GossipPort()) }

func (n *testNode) join(t *testing.T, seed *testNode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.c.Join(ctx, seed.seed()); err != nil {
		t.Fatalf("%s joins %s: %v", n.name, seed.name, err)
	}
}

// state is member name's state in n's listing ("" when absent).
func (n *testNode) state(t *testing.T, name string) string {
	t.Helper()
	ms, err := n.c.Members("")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Name == name {
			return m.State
		}
	}
	return ""
}

// waitFor polls cond every 20 ms for up to d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (n *testNode) waitState(t *testing.T, name, want string) {
	t.Helper()
	waitFor(t, 15*time.Second, fmt.Sprintf("%s to see %s %s", n.name, name, want),
		func() bool { return n.state(t, name) == want })
}

// waitEvent reads ch until an event of type typ about member (any member
// when "") comes, for up to 10 s.
func waitEvent(t *testing.T, ch <-chan Event, typ, member string) Event {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatalf("events closed before %s %s", typ, member)
			}
			if ev.Type == typ && (member == "" || (ev.Member != nil && ev.Member.Name == member)) {
				return ev
			}
		case <-timeout:
			t.Fatalf("no %s event about %q", typ, member)
		}
	}
}

func TestClusterConfigErrors(t *testing.T) {
	cc := nodeConfig("bad", "not-a-key")
	_, err := NewCluster(cc)
	if !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "cluster_keys") ||
		strings.Contains(err.Error(), "not-a-key") {
		t.Fatalf("bad key: %v", err)
	}
	cc = nodeConfig("bad", "")
	cc.Strategy = "fastest"
	if _, err := NewCluster(cc); !errors.Is(err, ErrInvalidArgument) || !strings.Contains(err.Error(), "cluster_strategy") {
		t.Fatalf("bad strategy: %v", err)
	}
	cc = nodeConfig("bad", "")
	cc.Config.Extra = map[string]string{"no_such_key": "1"}
	if _, err := NewCluster(cc); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("unknown key: %v", err)
	}
	cc = nodeConfig("", "")
	cc.GossipBind = "not an address"
	if _, err := NewCluster(cc); err == nil {
		t.Fatal("bad gossip_bind accepted")
	}
}

func TestClusterJoinMembersEventsCalls(t *testing.T) {
	a := startNode(t, "a", testKey, true)
	b := startNode(t, "b", testKey, true)
	d := startNode(t, "d", testKey, false)
	if a.c.Name() != "a" || a.c.GossipPort() <= 0 {
		t.Fatalf("name %q port %d", a.c.Name(), a.c.GossipPort())
	}
	aev := a.c.Events()
	if a.c.Events() != aev {
		t.Fatal("Events returned another channel")
	}
	b.join(t, a)
	d.join(t, a)
	ev := waitEvent(t, aev, "joined", "b")
	if ev.Member.State != "alive" || ev.Member.Tags["role"] != "worker" || ev.Member.RPCAddr == "" {
		t.Fatalf("joined event: %+v", ev.Member)
	}
	d.waitState(t, "a", "alive")
	d.waitState(t, "b", "alive")
	b.waitState(t, "d", "alive")

	// Members, with a filter: a and b (d has no role tag).
	ms, err := d.c.Members("role=worker")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]Member{}
	for _, m := range ms {
		names[m.Name] = m
	}
	if len(ms) != 2 || names["a"].RPCAddr == "" || names["b"].Tags["role"] != "worker" || names["a"].Self {
		t.Fatalf("members role=worker: %+v", ms)
	}
	all, _ := d.c.Members("")
	self := 0
	for _, m := range all {
		if m.Self {
			self++
			if m.Name != "d" || m.RPCAddr != "" || m.Tags == nil {
				t.Fatalf("self: %+v", m)
			}
		}
		if m.Incarnation == 0 && m.Name == "a" { // a set a tag: a new incarnation
			t.Fatalf("incarnation of a: %+v", m)
		}
	}
	if len(all) != 3 || self != 1 {
		t.Fatalf("all members: %+v", all)
	}
	if _, err := d.c.Members("=bad"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad filter: %v", err)
	}

	// Routed calls reach both workers; ServedBy names the answering one.
	ctx := context.Background()
	byA, byB := 0, 0
	for i := 0; i < 40; i++ {
		var who string
		out, err := d.c.CallRaw(ctx, "role=worker", "work", []byte(fmt.Sprint(i)), ServedBy(&who))
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != who+":"+fmt.Sprint(i) {
			t.Fatalf("answer %q from %q", out, who)
		}
		switch who {
		case "a":
			byA++
		case "b":
			byB++
		}
	}
	if byA == 0 || byB == 0 || byA+byB != 40 {
		t.Fatalf("served by a %d, b %d", byA, byB)
	}
	var greeting string
	if err := d.c.Call(ctx, "", "hello", "d", &greeting); err != nil || !strings.HasSuffix(greeting, " greets d") {
		t.Fatalf("Call: %q %v", greeting, err)
	}
	// ctx's deadline is the call's timeout.
	tctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	start := time.Now()
	err = d.c.Call(tctx, "", "slow", 5000, nil)
	cancel()
	if !errors.Is(err, ErrDeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Fatalf("deadline: %v after %v", err, time.Since(start))
	}

	// A tag change reaches d and steers calls; removing it too.
	if err := a.c.SetTag("zone", "eu"); err != nil {
		t.Fatal(err)
	}
	if err := a.c.SetTag("bad,key", "x"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad tag key: %v", err)
	}
	waitEvent(t, b.c.Events(), "updated", "a")
	waitFor(t, 5*time.Second, "zone=eu at d", func() bool {
		ms, _ := d.c.Members("zone=eu")
		return len(ms) == 1 && ms[0].Name == "a" && ms[0].Tags["zone"] == "eu"
	})
	for i := 0; i < 10; i++ {
		var who string
		if _, err := d.c.CallRaw(ctx, "zone=eu", "work", nil, ServedBy(&who)); err != nil || who != "a" {
			t.Fatalf("zone=eu call: %q %v", who, err)
		}
	}
	var who string
	_, err = d.c.CallRaw(ctx, "zone=us", "work", nil, ServedBy(&who))
	var e *Error
	if !errors.Is(err, ErrUnavailable) || !errors.As(err, &e) || !strings.Contains(e.Message, "no member") || who != "" {
		t.Fatalf("no member: %v (served by %q)", err, who)
	}
	if _, err := d.c.CallRaw(ctx, "zone=us", "work", nil, Metadata(map[string]string{"x": "y"})); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("metadata on a routed unary call: %v", err)
	}

	// The streaming form picks a member too, with metadata and trailers.
	var tr map[string]string
	st, err := d.c.Stream(ctx, "zone=eu", "upper", Metadata(map[string]string{"x-who": "d"}), Trailer(&tr))
	if err != nil {
		t.Fatal(err)
	}
	st.SendRaw([]byte("abc"))
	st.CloseSend()
	if b, err := st.RecvRaw(); err != nil || string(b) != "ABC" {
		t.Fatalf("stream: %q %v", b, err)
	}
	if b, err := st.RecvRaw(); err != nil || string(b) != "a/d" {
		t.Fatalf("stream end: %q %v", b, err)
	}
	if _, err := st.RecvRaw(); err != io.EOF || tr == nil {
		t.Fatalf("stream eof: %v %v", err, tr)
	}
	st.Close()
	if _, err := d.c.Stream(ctx, "zone=us", "upper"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("stream without member: %v", err)
	}
	if _, err := d.c.Stream(ctx, "=bad", "upper"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("stream bad filter: %v", err)
	}
	if err := a.c.DeleteTag("zone"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "zone removed at d", func() bool {
		ms, _ := d.c.Members("zone")
		return len(ms) == 0
	})

	// A graceful leave: "left" elsewhere, an event, and calls avoid b.
	lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	if err := b.c.Leave(lctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	waitEvent(t, aev, "left", "b")
	d.waitState(t, "b", "left")
	for i := 0; i < 10; i++ {
		var who string
		if _, err := d.c.CallRaw(ctx, "role=worker", "work", nil, ServedBy(&who)); err != nil || who != "a" {
			t.Fatalf("after leave: %q %v", who, err)
		}
	}
	if err := b.c.Join(ctx, a.seed()); !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("join after leave: %v", err)
	}
}

func TestClusterIdempotentAndFailure(t *testing.T) {
	a := startNode(t, "fa", testKey, true)
	b := startNode(t, "fb", testKey, true)
	d := startNode(t, "fd", testKey, false)
	b.join(t, a)
	d.join(t, a)
	d.waitState(t, "fa", "alive")
	d.waitState(t, "fb", "alive")
	// b answers UNAVAILABLE (draining): idempotent calls go on to a.
	b.s.Handle("work", func(ctx context.Context, r *Request) (any, error) {
		return nil, Errorf(Unavailable, "draining")
	})
	ctx := context.Background()
	for i := 0; i < 30; i++ {
		var who string
		out, err := d.c.CallRaw(ctx, "", "work", []byte("x"), Idempotent(), ServedBy(&who))
		if err != nil || who != "fa" || string(out) != "fa:x" {
			t.Fatalf("idempotent call %d: %q by %q: %v", i, out, who, err)
		}
	}
	for i := 0; i < 10; i++ {
		if _, err := d.c.CallRaw(ctx, "", "work", nil, Hedge()); err != nil {
			t.Fatalf("hedged call: %v", err)
		}
	}
	// Without the flag a call that lands on b fails with b's status (the
	// breaker may have ejected b already: then a serves everything).
	for i := 0; i < 30; i++ {
		var who string
		_, err := d.c.CallRaw(ctx, "", "work", nil, ServedBy(&who))
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != Unavailable || who != "fb" || e.Message != "draining" {
				t.Fatalf("plain call: %v by %q", err, who)
			}
			break
		}
	}
	// b vanishes without leaving: d sees it fail.
	dev := d.c.Events()
	b.c.Close()
	b.s.Close()
	waitEvent(t, dev, "failed", "fb")
	d.waitState(t, "fb", "dead")
}

func TestClusterWrongKey(t *testing.T) {
	// A join waits for its whole join timeout even when a seed refused the
	// key (another seed might accept it): 1 s here.
	short := func(cc *ClusterConfig) { cc.JoinTimeout = time.Second }
	a := startNode(t, "ka", testKey, true)
	x := startNode(t, "kx", "fedcba9876543210fedcba9876543210", true, short)
	ctx := context.Background()
	err := x.c.Join(ctx, a.seed())
	var e *Error
	if !errors.Is(err, ErrPermissionDenied) || !errors.As(err, &e) || !strings.Contains(e.Message, "cluster_keys") {
		t.Fatalf("wrong key: %v", err)
	}
	// No key at all. (The seed's refusal is never longer than the datagram
	// refused: a node without a server sends join pings too short for it
	// and gets UNAVAILABLE instead.)
	p := startNode(t, "kp", "", true, short)
	if err := p.c.Join(ctx, a.seed()); !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("no key: %v", err)
	}
	if a.state(t, "kx") != "" || a.state(t, "kp") != "" {
		t.Fatal("a node with a wrong key was admitted")
	}
	if err := a.c.Join(ctx, "127.0.0.1:notaport"); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad seed: %v", err)
	}
	// ctx's deadline earlier than the join timeout: Join returns at once,
	// the attempt goes on in the background (Close waits for it).
	q := startNode(t, "kq", testKey, false, func(cc *ClusterConfig) { cc.JoinTimeout = 1500 * time.Millisecond })
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = q.c.Join(tctx, "127.0.0.1:1")
	if !errors.Is(err, ErrDeadlineExceeded) || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("join deadline: %v after %v", err, time.Since(start))
	}
	start = time.Now()
	if err := q.c.Join(ctx, "127.0.0.1:1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("join without an answer: %v", err)
	}
	if d := time.Since(start); d < time.Second {
		t.Fatalf("join gave up after %v, before the 1.5 s join timeout", d)
	}
}

func TestClusterClose(t *testing.T) {
	a := startNode(t, "ca", testKey, true)
	b := startNode(t, "cb", testKey, true)
	b.join(t, a)
	ev := b.c.Events()
	st, err := b.c.Stream(context.Background(), "", "upper")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.c.Close(); err != nil { // twice
		t.Fatal(err)
	}
	for range ev { // drained, then closed
	}
	if b.c.Name() != "cb" {
		t.Fatal("name after close")
	}
	if _, err := st.RecvRaw(); !errors.Is(err, ErrClosed) && !errors.Is(err, ErrCanceled) {
		t.Fatalf("stream after cluster close: %v", err)
	}
	st.Close()
	ctx := context.Background()
	closed := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrClosed) || !errors.Is(err, ErrFailedPrecondition) {
			t.Fatalf("%s after Close: %v", what, err)
		}
	}
	closed("SetTag", b.c.SetTag("k", "v"))
	closed("DeleteTag", b.c.DeleteTag("k"))
	closed("Join", b.c.Join(ctx, a.seed()))
	closed("Leave", b.c.Leave(ctx))
	_, err = b.c.Members("")
	closed("Members", err)
	_, err = b.c.CallRaw(ctx, "", "work", nil)
	closed("CallRaw", err)
	closed("Call", b.c.Call(ctx, "", "hello", "x", nil))
	_, err = b.c.Stream(ctx, "", "upper")
	closed("Stream", err)
	closed("AttachServer", b.c.AttachServer(b.s))

	// A cluster closed before Events was called: a closed channel.
	c := startNode(t, "cc", testKey, false)
	c.c.Close()
	if _, ok := <-c.c.Events(); ok {
		t.Fatal("event after close")
	}

	// Closing the server closes the cluster attached to it first.
	a.s.Close()
	_, err = a.c.Members("")
	closed("Members after Server.Close", err)

	// Attaching a server that does not listen, or twice.
	s, err := NewServer(Config{CertFile: cert("server.pem"), KeyFile: cert("server-key.pem")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := startNode(t, "ce", testKey, false)
	if err := e.c.AttachServer(s); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("attach a server that does not listen: %v", err)
	}
	s.Listen("127.0.0.1:0")
	if err := e.c.AttachServer(s); err != nil {
		t.Fatal(err)
	}
	if err := e.c.AttachServer(s); !errors.Is(err, ErrFailedPrecondition) {
		t.Fatalf("attach twice: %v", err)
	}
}

// Cancelling ctx returns at once; the abandoned routed call ends in the
// background and Close waits for it.
func TestClusterCallCancel(t *testing.T) {
	a := startNode(t, "xa", testKey, true)
	d := startNode(t, "xd", testKey, false)
	d.join(t, a)
	d.waitState(t, "xa", "alive")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	err := d.c.Call(ctx, "", "slow", 700, nil)
	if !errors.Is(err, ErrCanceled) || !errors.Is(err, context.Canceled) || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("cancel: %v after %v", err, time.Since(start))
	}
	start = time.Now()
	d.c.Close()
	if el := time.Since(start); el < 300*time.Millisecond {
		t.Fatalf("Close returned after %v, before the abandoned call ended", el)
	}
	// A cancelled stream is cancelled on the server too.
	ctx, cancel = context.WithCancel(context.Background())
	e := startNode(t, "xe", testKey, false)
	e.join(t, a)
	e.waitState(t, "xa", "alive")
	st, err := e.c.Stream(ctx, "", "upper")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := st.RecvRaw(); !errors.Is(err, ErrCanceled) {
		t.Fatalf("cancelled stream: %v", err)
	}
	st.Close()
}

func TestClusterConcurrent(t *testing.T) {
	a := startNode(t, "pa", testKey, true)
	b := startNode(t, "pb", testKey, true)
	d := startNode(t, "pd", testKey, false)
	b.join(t, a)
	d.join(t, a)
	d.waitState(t, "pa", "alive")
	d.waitState(t, "pb", "alive")
	ctx := context.Background()
	var wg sync.WaitGroup
	errc := make(chan error, 64)
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				req := fmt.Sprintf("g%d-%d", g, i)
				var who string
				opts := []CallOption{ServedBy(&who)}
				cctx := ctx
				switch i % 3 {
				case 1:
					opts = append(opts, Idempotent())
				case 2:
					var cancel context.CancelFunc
					cctx, cancel = context.WithTimeout(ctx, 5*time.Second)
					defer cancel()
				}
				out, err := d.c.CallRaw(cctx, "role=worker", "work", []byte(req), opts...)
				if err != nil {
					errc <- err
					return
				}
				if string(out) != who+":"+req {
					errc <- fmt.Errorf("answer %q from %q for %q", out, who, req)
					return
				}
			}
		}(g)
	}
	for g := 0; g < 4; g++ { // members, tags and events meanwhile
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				if _, err := d.c.Members("role=worker"); err != nil {
					errc <- err
					return
				}
				if err := a.c.SetTag(fmt.Sprintf("k%d", g), fmt.Sprint(i)); err != nil {
					errc <- err
					return
				}
				d.c.Events()
			}
		}(g)
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

func TestClusterZeroValue(t *testing.T) {
	var c Cluster
	if err := c.SetTag("k", "v"); !errors.Is(err, ErrClosed) {
		t.Fatalf("zero Cluster: %v", err)
	}
	if _, ok := <-c.Events(); ok {
		t.Fatal("event from a zero Cluster")
	}
	c.Close()
	c.Close()
}

func TestClusterKeyRotationAndStats(t *testing.T) {
	a := startNode(t, "ka", testKey, true)
	b := startNode(t, "kb", testKey, true)
	b.join(t, a)
	b.waitState(t, "ka", "alive")
	newKey := "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA="
	rings := [][]string{{testKey, newKey}, {newKey, testKey}, {newKey}} // add, promote, drop
	for i, ring := range rings {
		for _, n := range []*testNode{a, b} {
			if err := n.c.SetKeys(ring...); err != nil {
				t.Fatalf("SetKeys %v: %v", ring, err)
			}
		}
		step := fmt.Sprint(i)
		if err := a.c.SetTag("step", step); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			ms, err := b.c.Members("step=" + step)
			if err == nil && len(ms) == 1 && ms[0].Name == "ka" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("step %d not gossiped after SetKeys: %v %v", i, ms, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := a.c.SetKeys("short"); !errors.Is(err, ErrInvalidArgument) || strings.Contains(err.Error(), "short") {
		t.Fatalf("bad key: %v", err)
	}
	st, err := a.c.Stats()
	if err != nil || st["members"] < 2 || st["incarnation"] == 0 || st["pkts_in"] == 0 {
		t.Fatalf("stats: %v %v", st, err)
	}
	if _, ok := st["auth_failures"]; !ok {
		t.Fatalf("stats lack auth_failures: %v", st)
	}
}
