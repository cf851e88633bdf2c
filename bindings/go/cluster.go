package rpcnet

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rpcnet/rpcnet/bindings/go/internal/capi"
)

// ClusterConfig holds the settings of a cluster node (rpcnet_cluster_new).
// Every field maps to one config key of <rpcnet/rpcnet.h>; zero values leave
// the library default. Config holds the TLS client settings used for calls
// to members and for push-pull (CAFile, ServerName, InsecureSkipVerify,
// CertFile/KeyFile for mTLS, timeouts); its Extra map sets any other key and
// overrides the fields (e.g. "cluster_retries": "0", "sync_interval_ms": "0").
type ClusterConfig struct {
	NodeName         string        // node_name (default "<hostname>-<port>")
	GossipBind       string        // gossip_bind (default "0.0.0.0:7946"; port 0 picks one)
	GossipAdvertise  string        // gossip_advertise
	RPCAdvertise     string        // rpc_advertise (default: from AttachServer)
	Keys             []string      // cluster_keys (base64 or hex; the first seals, all open; none: clear)
	ProbeInterval    time.Duration // probe_interval_ms
	ProbeTimeout     time.Duration // probe_timeout_ms
	GossipInterval   time.Duration // gossip_interval_ms
	SyncInterval     time.Duration // sync_interval_ms
	Reap             time.Duration // reap_ms
	SuspicionMult    int           // suspicion_mult
	DisableLifeguard bool          // lifeguard=false
	JoinTimeout      time.Duration // join_timeout_ms (default 5 s)
	Strategy         string        // cluster_strategy: p2c, round_robin, random, least_connections
	Retries          int           // cluster_retries (default 2)
	HedgePercentile  int           // hedge_percentile, 50..99 (default 95)
	BreakerFailures  int           // breaker_failures (default 5)
	Config           Config        // TLS and transport settings, Extra
}

func (cc *ClusterConfig) pairs() [][2]string {
	var kv kvPairs
	s, ms, n := kv.s, kv.ms, kv.n
	s("node_name", cc.NodeName)
	s("gossip_bind", cc.GossipBind)
	s("gossip_advertise", cc.GossipAdvertise)
	s("rpc_advertise", cc.RPCAdvertise)
	s("cluster_keys", strings.Join(cc.Keys, ","))
	ms("probe_interval_ms", cc.ProbeInterval)
	ms("probe_timeout_ms", cc.ProbeTimeout)
	ms("gossip_interval_ms", cc.GossipInterval)
	ms("sync_interval_ms", cc.SyncInterval)
	ms("reap_ms", cc.Reap)
	n("suspicion_mult", cc.SuspicionMult)
	if cc.DisableLifeguard {
		s("lifeguard", "false")
	}
	ms("join_timeout_ms", cc.JoinTimeout)
	s("cluster_strategy", cc.Strategy)
	n("cluster_retries", cc.Retries)
	n("hedge_percentile", cc.HedgePercentile)
	n("breaker_failures", cc.BreakerFailures)
	return append(kv, cc.Config.pairs()...) // Config.Extra last: it overrides
}

// Member is one node of the cluster as this node sees it.
type Member struct {
	Name        string
	GossipAddr  string            // "host:port" of its gossip socket
	RPCAddr     string            // "host:port" it serves calls on ("" if none)
	State       string            // "alive", "suspect", "dead" or "left"
	Incarnation uint64            // SWIM incarnation number
	Tags        map[string]string // never nil
	Self        bool              // this node
	Inflight    int               // routed calls from this node in flight to it
	Latency     time.Duration     // call latency EWMA (0 until measured)
	Phi         float64           // phi accrual score of call latencies
	Breaker     string            // "closed", "open" or "half_open"
}

// memberWire is a member as the C library encodes it (CBOR map).
type memberWire struct {
	Name        string            `cbor:"name"`
	GossipAddr  string            `cbor:"gossip_addr"`
	RPCAddr     string            `cbor:"rpc_addr"`
	State       string            `cbor:"state"`
	Incarnation uint64            `cbor:"incarnation"`
	Tags        map[string]string `cbor:"tags"`
	Self        bool              `cbor:"self"`
	Inflight    uint64            `cbor:"inflight"`
	LatencyUS   uint64            `cbor:"latency_us"`
	Phi         float64           `cbor:"phi"`
	Breaker     string            `cbor:"breaker"`
}

func (w *memberWire) member() *Member {
	m := &Member{Name: w.Name, GossipAddr: w.GossipAddr, RPCAddr: w.RPCAddr, State: w.State,
		Incarnation: w.Incarnation, Tags: w.Tags, Self: w.Self, Inflight: int(w.Inflight),
		Latency: time.Duration(w.LatencyUS) * time.Microsecond, Phi: w.Phi, Breaker: w.Breaker}
	if m.Tags == nil {
		m.Tags = map[string]string{}
	}
	return m
}

// Event is a membership change. Type is "joined", "left", "failed",
// "updated" (tags or address changed), "recovered", "suspected",
// "partitioned" or "healed"; Member is the member's state after the change
// (nil for "partitioned" and "healed").
type Event struct {
	Type   string
	Member *Member
}

type eventWire struct {
	Type   string      `cbor:"type"`
	Member *memberWire `cbor:"member"`
}

// Flags of a routed call (enum rpcnet_call_flags).
const (
	callIdempotent = 1 // RPCNET_CALL_IDEMPOTENT
	callHedge      = 2 // RPCNET_CALL_HEDGE
)

// EventBuffer is the capacity of the channel returned by Cluster.Events.
const EventBuffer = 256

// DefaultLeaveTimeout is how long Leave waits when its ctx has no deadline.
const DefaultLeaveTimeout = 5 * time.Second

// Cluster is a node of an rpcnet cluster: SWIM membership with Lifeguard,
// tags, membership events and calls routed to members chosen by tags
// (docs/cluster.md). Its methods may be called from any number of
// goroutines at once. Close frees it.
type Cluster struct {
	mu        sync.RWMutex // read-held by every C call on cl, write-held by Close to free it
	cl        capi.Cluster // 0 once closed
	closed    atomic.Bool
	closeOnce sync.Once
	name      string
	port      int

	smu     sync.Mutex // guards streams and srv
	streams map[*callHandle]struct{}
	srv     *Server

	evOnce sync.Once
	events chan Event
	evDone chan struct{} // closed when the event goroutine has returned
	stop   chan struct{} // closed by Close
}

// NewCluster creates a node: binds the gossip UDP socket and starts the
// failure detector, alone until Join. A wrong setting (a bad key, an unknown
// strategy, a malformed address) is an INVALID_ARGUMENT *Error whose message
// names the config key (never the key material); a gossip socket that
// cannot be bound is UNAVAILABLE.
func NewCluster(cfg ClusterConfig) (*Cluster, error) {
	cc := capi.Rpcnet_config_new()
	if cc == 0 {
		return nil, &Error{Code: ResourceExhausted, Message: "out of memory"}
	}
	defer capi.Rpcnet_config_free(cc)
	for _, p := range cfg.pairs() {
		if st, msg := locked(func() int { return capi.Rpcnet_config_set(cc, p[0], p[1]) }); st != 0 {
			return nil, &Error{Code: InvalidArgument, Message: msg}
		}
	}
	var cl capi.Cluster
	if msg := lockedPtr(func() uintptr { cl = capi.Rpcnet_cluster_new(cc); return uintptr(cl) }); msg != "" || cl == 0 {
		code := Unavailable // the gossip socket or its threads
		if strings.Contains(msg, "config key") || strings.Contains(msg, "settings") {
			code = InvalidArgument
		}
		return nil, &Error{Code: code, Message: msg}
	}
	return &Cluster{cl: cl, name: capi.Rpcnet_cluster_name(cl), port: capi.Rpcnet_cluster_gossip_port(cl),
		streams: map[*callHandle]struct{}{}, stop: make(chan struct{})}, nil
}

// Name is this node's name (also after Close).
func (c *Cluster) Name() string { return c.name }

// GossipPort is the bound gossip UDP port (also after Close).
func (c *Cluster) GossipPort() int { return c.port }

// acquire read-locks c for one C call; it fails once c is closed.
func (c *Cluster) acquire() error {
	c.mu.RLock()
	if c.cl == 0 || c.closed.Load() {
		c.mu.RUnlock()
		return closedErr("cluster")
	}
	return nil
}

// AttachServer makes s this node's RPC endpoint: the cluster's push-pull
// method is registered on it and, unless RPCAdvertise was set, this node
// advertises the gossip host with s's port. s must be listening. The server
// must outlive the cluster: Server.Close closes the clusters attached to it
// first (without a leave). A node without a server still joins, gossips and
// calls others, but cannot be called.
func (c *Cluster) AttachServer(s *Server) error {
	s.mu.RLock() // before c's lock: Server.Close holds s.mu while it closes c
	defer s.mu.RUnlock()
	if err := c.acquire(); err != nil {
		return err
	}
	defer c.mu.RUnlock()
	if s.s == 0 {
		return closedErr("server")
	}
	st, msg := locked(func() int { return capi.Rpcnet_cluster_attach_server(c.cl, s.s) })
	if st != 0 {
		if msg == "" {
			msg = "server not listening, or a server is already attached"
		}
		return statusErr(st, msg)
	}
	c.smu.Lock()
	c.srv = s
	c.smu.Unlock()
	s.cmu.Lock()
	s.clusters = append(s.clusters, c)
	s.cmu.Unlock()
	return nil
}

// SetTag sets a tag of this node; the change is gossiped at once. Keys are
// at most 128 bytes without ',' or '=', values 512, at most 32 tags and
// 1 KiB in all (INVALID_ARGUMENT, RESOURCE_EXHAUSTED).
func (c *Cluster) SetTag(key, value string) error {
	if err := c.acquire(); err != nil {
		return err
	}
	defer c.mu.RUnlock()
	return statusErr(locked(func() int { return capi.Rpcnet_cluster_set_tag(c.cl, key, value) }))
}

// DeleteTag removes a tag of this node (gossiped at once).
func (c *Cluster) DeleteTag(key string) error {
	if err := c.acquire(); err != nil {
		return err
	}
	defer c.mu.RUnlock()
	return statusErr(locked(func() int { return capi.Rpcnet_go_cluster_untag(c.cl, key) }))
}

// SetKeys replaces the keyring without a restart (the first key seals, all
// open). Rotation with no downtime: on every node SetKeys(old, new), then
// SetKeys(new, old), then SetKeys(new). A bad key gives INVALID_ARGUMENT
// and leaves the keyring unchanged; no keys means unauthenticated gossip.
func (c *Cluster) SetKeys(keys ...string) error {
	if err := c.acquire(); err != nil {
		return err
	}
	defer c.mu.RUnlock()
	joined := strings.Join(keys, ",")
	return statusErr(locked(func() int { return capi.Rpcnet_cluster_set_keys(c.cl, joined) }))
}

// Stats returns this node's counters (pkts_in, bytes_out, auth_failures,
// probes, refutes, health, incarnation, members, ...; see
// rpcnet_cluster_stats in rpcnet.h), for metrics exporters.
func (c *Cluster) Stats() (map[string]uint64, error) {
	if err := c.acquire(); err != nil {
		return nil, err
	}
	var b capi.Buf
	st, msg := locked(func() int { return capi.Rpcnet_cluster_stats(c.cl, &b) })
	c.mu.RUnlock()
	if st != 0 {
		return nil, statusErr(st, msg)
	}
	out := map[string]uint64{}
	if err := Unmarshal(b.Take(), &out); err != nil {
		return nil, &Error{Code: Internal, Message: "decode stats: " + err.Error(), Cause: err}
	}
	return out, nil
}

// blocking runs f, a blocking C call on c, with c read-locked and the
// goroutine locked to its thread; a failing status gets f's message, else
// rpcnet_last_error(). When ctx can be cancelled f runs in a goroutine of
// its own, and blocking returns as soon as ctx is done, with a CANCELLED or
// DEADLINE_EXCEEDED *Error wrapping ctx.Err() and ran false: the C call
// cannot be interrupted, so it goes on to its own end and its result is
// dropped (Close waits for it). ran true: f returned, its outputs are set.
func (c *Cluster) blocking(ctx context.Context, f func(cl capi.Cluster) (int, string)) (ran bool, err error) {
	if err := ctxErr(ctx); err != nil {
		return false, err
	}
	if err := c.acquire(); err != nil {
		return false, err
	}
	run := func() error {
		defer c.mu.RUnlock()
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		st, msg := f(c.cl)
		if st != 0 && msg == "" {
			msg = capi.Rpcnet_last_error()
		}
		return statusErr(st, msg)
	}
	if ctx.Done() == nil {
		return true, run()
	}
	done := make(chan error, 1)
	go func() { done <- run() }()
	select {
	case err := <-done:
		return true, withCtx(ctx, err)
	case <-ctx.Done():
		select { // both ready: keep the C call's own result
		case err := <-done:
			return true, withCtx(ctx, err)
		default:
		}
		return false, ctxErr(ctx)
	}
}

// Join joins the cluster through seeds (gossip addresses "host:port"; each
// argument may also be a comma-separated list). It blocks until a push-pull
// with one seed completed, or for the config's JoinTimeout (default 5 s):
// the C join takes no per-call timeout. When ctx is done first, Join
// returns at once with CANCELLED or DEADLINE_EXCEEDED (wrapping ctx.Err()),
// but the join attempt goes on in the background until it completes or the
// join timeout passes, and may still succeed (Members and Events then show
// it). Errors: INVALID_ARGUMENT (bad seed list), PERMISSION_DENIED (a seed
// refused this node's cluster key: the message names the seed and
// cluster_keys), UNAVAILABLE (no seed answered), FAILED_PRECONDITION (after
// Leave). Join may be called again.
func (c *Cluster) Join(ctx context.Context, seeds ...string) error {
	list := strings.Join(seeds, ",")
	_, err := c.blocking(ctx, func(cl capi.Cluster) (int, string) {
		return capi.Rpcnet_cluster_join(cl, list), ""
	})
	return err
}

// Leave leaves the cluster gracefully: the others record this node as
// "left", not failed. It waits until ctx's deadline (none:
// DefaultLeaveTimeout) for the leave to be gossiped, then stops probing; the
// node still answers calls until Close. DEADLINE_EXCEEDED means the leave
// was not confirmed in time (the others still learn it). Cancelling ctx
// returns at once; the leave goes on.
func (c *Cluster) Leave(ctx context.Context) error {
	tmo := int(DefaultLeaveTimeout / time.Millisecond)
	if _, ok := ctx.Deadline(); ok {
		var err error
		if tmo, err = timeoutMS(ctx); err != nil {
			return err
		}
	}
	_, err := c.blocking(ctx, func(cl capi.Cluster) (int, string) {
		return capi.Rpcnet_cluster_leave(cl, tmo), ""
	})
	return err
}

// Members lists the members whose tags match filter ("k=v,k2=v2", "k" for
// presence, "k!=v"; "" for all), this node included. Dead and left members
// are listed until reaped. A bad filter is INVALID_ARGUMENT.
func (c *Cluster) Members(filter string) ([]Member, error) {
	if err := c.acquire(); err != nil {
		return nil, err
	}
	var b capi.Buf
	st, msg := locked(func() int { return capi.Rpcnet_cluster_members(c.cl, filter, &b) })
	c.mu.RUnlock()
	if st != 0 {
		return nil, statusErr(st, msg)
	}
	var ws []memberWire
	if err := Unmarshal(b.Take(), &ws); err != nil {
		return nil, &Error{Code: Internal, Message: "decode members: " + err.Error(), Cause: err}
	}
	out := make([]Member, len(ws))
	for i := range ws {
		out[i] = *ws[i].member()
	}
	return out, nil
}

// Events returns the channel of membership events. The first call starts
// one goroutine that pulls them from the library (rpcnet_cluster_next_event,
// 100 ms waits; no library thread calls into Go); every call returns the
// same channel, which Close closes. Buffering: the channel holds
// EventBuffer events; when it is full the goroutine waits, and events queue
// in the library, which keeps the newest 65536 and drops older ones beyond
// that. Events that happened before the first call are queued there too
// (read them, or they count against that limit). Nothing is dropped in Go.
func (c *Cluster) Events() <-chan Event {
	c.evOnce.Do(func() {
		c.events = make(chan Event, EventBuffer)
		c.evDone = make(chan struct{})
		go c.pullEvents()
	})
	return c.events
}

func (c *Cluster) pullEvents() {
	defer close(c.evDone)
	defer close(c.events)
	for {
		select {
		case <-c.stop:
			return
		default:
		}
		if c.acquire() != nil {
			return
		}
		var b capi.Buf
		st := capi.Rpcnet_cluster_next_event(c.cl, 100, &b)
		data := b.Take()
		c.mu.RUnlock()
		if st != 0 {
			continue
		}
		var w eventWire
		if Unmarshal(data, &w) != nil {
			continue
		}
		ev := Event{Type: w.Type}
		if w.Member != nil {
			ev.Member = w.Member.member()
		}
		select {
		case c.events <- ev:
		case <-c.stop:
			return
		}
	}
}

// Idempotent marks a Cluster call as safe to run more than once: on
// UNAVAILABLE (an answer or an unreachable member) it is retried on another
// member (Retries times, default 2), within the one deadline.
func Idempotent() CallOption {
	return func(o *callOptions) { o.flags |= callIdempotent }
}

// Hedge makes a Cluster call idempotent and hedged: when the first attempt
// has not answered by the HedgePercentile latency, a second one starts on
// another member and the first answer wins (the other is cancelled).
func Hedge() CallOption {
	return func(o *callOptions) {
		o.flags |= callIdempotent | callHedge
	}
}

// ServedBy stores in *name the name of the member whose answer a Cluster
// call returns ("" when none answered), on success and on failure (the
// member that answered with the error). Ignored by Client calls.
func ServedBy(name *string) CallOption {
	return func(o *callOptions) { o.servedBy = name }
}

// CallRaw sends req (bytes) to method on one alive member whose tags match
// filter ("" for any), chosen by the config's Strategy; connections to
// members are pooled. It returns the answer (an empty slice for an OK
// without a message). ctx's deadline is the call's timeout (none: the
// config's DefaultTimeout, 30 s). Options: Idempotent, Hedge, ServedBy,
// Trailer (always set to an empty map: the routed call does not report
// trailers). Metadata cannot be sent on a routed unary call (use Stream):
// it is an INVALID_ARGUMENT error, from the option or from WithMetadata.
// UNAVAILABLE: no member matches, or the chosen one is unreachable or
// answered UNAVAILABLE (without Idempotent a call is attempted once).
//
// Cancelling ctx: the routed unary call of the C library is blocking and
// cannot be interrupted, so CallRaw returns at once with CANCELLED
// (wrapping context.Canceled) while the attempt goes on in the background
// until it ends or its timeout passes, and its answer is dropped; the
// server does not see a cancellation. Close waits for such calls. A call
// that must be cancellable on the server's side can use Stream.
func (c *Cluster) CallRaw(ctx context.Context, filter, method string, req []byte, opts ...CallOption) ([]byte, error) {
	o := collectOptions(ctx, opts)
	if o.trailer != nil {
		*o.trailer = map[string]string{}
	}
	if o.servedBy != nil {
		*o.servedBy = ""
	}
	if len(o.md) > 0 {
		return nil, &Error{Code: InvalidArgument, Message: "a routed unary call cannot send metadata; use Cluster.Stream"}
	}
	tmo, err := timeoutMS(ctx)
	if err != nil {
		return nil, err
	}
	if req == nil {
		req = []byte{}
	}
	var out []byte
	var member string
	ran, err := c.blocking(ctx, func(cl capi.Cluster) (int, string) {
		var resp capi.Buf
		// The member's name is in thread-local storage until the next
		// call on this thread: blocking holds the thread (locked) until
		// the wrapper has copied it.
		st := capi.Rpcnet_swig_cluster_call(cl, filter, method, req, &resp, tmo, o.flags, &member)
		out = resp.Take()
		return st, ""
	})
	if ran && o.servedBy != nil {
		*o.servedBy = member
	}
	if err != nil {
		return nil, err
	}
	if out == nil {
		out = []byte{}
	}
	return out, nil
}

// Call encodes in with Marshal, calls method on a member matching filter as
// CallRaw does, and decodes the answer into out (a pointer, or nil to
// discard it) with Unmarshal.
func (c *Cluster) Call(ctx context.Context, filter, method string, in, out any, opts ...CallOption) error {
	req, err := Marshal(in)
	if err != nil {
		return &Error{Code: InvalidArgument, Message: "encode request: " + err.Error(), Cause: err}
	}
	resp, err := c.CallRaw(ctx, filter, method, req, opts...)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if err := Unmarshal(resp, out); err != nil {
		return &Error{Code: Internal, Message: "decode response: " + err.Error(), Cause: err}
	}
	return nil
}

// Stream starts a streaming call of method on one member matching filter
// (rpcnet_cluster_start), used as a Client's Stream: ctx's deadline is the
// whole call's timeout and cancelling ctx cancels it (the server sees the
// cancellation). Streams are not retried; no member matching or the chosen
// one unreachable is UNAVAILABLE, a bad filter INVALID_ARGUMENT. Options:
// Metadata, Trailer. Close the stream when done; Cluster.Close cancels and
// frees the streams still open.
func (c *Cluster) Stream(ctx context.Context, filter, method string, opts ...CallOption) (*Stream, error) {
	o := collectOptions(ctx, opts)
	fail := func(err error) (*Stream, error) {
		o.storeTrailers(0)
		return nil, err
	}
	if err := ctxErr(ctx); err != nil {
		return fail(err)
	}
	tmo, err := timeoutMS(ctx)
	if err != nil {
		return fail(err)
	}
	if err := c.acquire(); err != nil {
		return fail(err)
	}
	var cc cCall
	msg := lockedPtr(func() uintptr { cc = capi.Rpcnet_cluster_start(c.cl, filter, method, tmo); return uintptr(cc) })
	if cc == 0 {
		c.mu.RUnlock()
		code := Unavailable
		if strings.Contains(msg, "bad filter") || strings.Contains(msg, "empty argument") {
			code = InvalidArgument
		}
		return fail(&Error{Code: code, Message: msg})
	}
	h := &callHandle{c: cc, owner: c}
	h.mu.RLock() // Close waits for the metadata below
	c.smu.Lock()
	c.streams[h] = struct{}{}
	c.smu.Unlock()
	c.mu.RUnlock()
	if err := h.setMetadata(o.md); err != nil {
		return fail(err)
	}
	return &Stream{h: h, ctx: ctx, stop: context.AfterFunc(ctx, h.cancel), trailer: o.trailer}, nil
}

// forget drops a released stream from the cluster's set.
func (c *Cluster) forget(h *callHandle) {
	c.smu.Lock()
	delete(c.streams, h)
	c.smu.Unlock()
}

// Close stops gossip without a leave (call Leave first for a graceful
// exit: otherwise the others see this node fail), stops the Events
// goroutine and closes its channel, cancels and frees the streams still
// open (they fail with CANCELLED), waits for the calls in flight (a routed
// unary call, a Join or a Leave runs to its own end or timeout, see
// CallRaw), closes pooled connections and frees the node. Later use gives
// FAILED_PRECONDITION wrapping ErrClosed; calling Close again is harmless.
func (c *Cluster) Close() error {
	c.closeOnce.Do(c.close) // a concurrent Close waits for the first
	return nil
}

func (c *Cluster) close() {
	c.closed.Store(true)
	c.evOnce.Do(func() { // Events never called: later calls get a closed channel
		c.events = make(chan Event)
		close(c.events)
		c.evDone = make(chan struct{})
		close(c.evDone)
	})
	if c.stop != nil { // nil in a zero Cluster
		close(c.stop)
	}
	<-c.evDone
	c.mu.Lock()
	defer c.mu.Unlock()
	c.smu.Lock()
	hs := make([]*callHandle, 0, len(c.streams))
	for h := range c.streams {
		hs = append(hs, h)
	}
	srv := c.srv
	c.srv = nil
	c.smu.Unlock()
	for _, h := range hs {
		h.free() // cancels, then waits for the goroutines using h
	}
	capi.Rpcnet_cluster_free(c.cl)
	c.cl = 0
	if srv != nil {
		srv.detach(c)
	}
}
