// Command unarybench measures ways of waiting for a unary call's answer
// through the SWIG layer (internal/capi), for the Go overhead study of
// docs/performance.md. Output as bench/bindings/go ("p50_us p99_us"):
//
//	go run ./internal/unarybench VARIANT CA_FILE ADDR CALLS
//
// Variants:
//
//	block    one blocking cgo call per call (rpcnet_go_unary), as the binding
//	spinN    send, then poll rpcnet_call_recv(call, 0) with runtime.Gosched
//	         between polls for up to N us, then block
//	netpoll  park the goroutine in Go's netpoller: the call's fd is added
//	         to a per-client epoll set registered once with the netpoller
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rpcnet/rpcnet/bindings/go/internal/capi"
)

func fail(f string, a ...any) {
	fmt.Fprintf(os.Stderr, "unarybench: "+f+"\n", a...)
	os.Exit(1)
}

const (
	ok          = 0
	endOfStream = -1
	wouldBlock  = -2
)

func start(cli capi.Client) capi.Call {
	call := capi.Rpcnet_client_start(cli, "echo", 0)
	if call == 0 {
		fail("start: %s", capi.Rpcnet_last_error())
	}
	return call
}

func finish(call capi.Call, resp []byte) []byte {
	var msg string
	if st := capi.Rpcnet_call_status(call, &msg); st != ok {
		fail("status %d: %s", st, msg)
	}
	capi.Rpcnet_call_free(call)
	return resp
}

func block(cli capi.Client, req []byte) []byte {
	call := start(cli)
	var b capi.Buf
	var msg string
	if st := capi.Rpcnet_go_unary(call, req, &b, &msg); st != ok {
		fail("call %d: %s", st, msg)
	}
	capi.Rpcnet_call_free(call)
	return b.Take()
}

func spin(limit time.Duration) func(capi.Client, []byte) []byte {
	return func(cli capi.Client, req []byte) []byte {
		call := start(cli)
		if st := capi.Rpcnet_call_send_last(call, req); st != ok {
			fail("send %d", st)
		}
		var resp []byte
		t0 := time.Now()
		for {
			var b capi.Buf
			ms := 0
			if time.Since(t0) >= limit {
				ms = -1
			}
			st := capi.Rpcnet_call_recv(call, ms, &b)
			if st == ok {
				if m := b.Take(); resp == nil {
					resp = m
				}
				continue
			}
			if st == endOfStream {
				break
			}
			runtime.Gosched()
		}
		return finish(call, resp)
	}
}

type poller struct {
	epfd int
	rc   syscall.RawConn
	evs  []syscall.EpollEvent
}

func newPoller() *poller {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		fail("epoll: %v", err)
	}
	syscall.SetNonblock(epfd, true)
	f := os.NewFile(uintptr(epfd), "rpcnet-epoll")
	rc, err := f.SyscallConn()
	if err != nil {
		fail("rawconn: %v", err)
	}
	return &poller{epfd: epfd, rc: rc, evs: make([]syscall.EpollEvent, 8)}
}

func (p *poller) unary(cli capi.Client, req []byte) []byte {
	call := start(cli)
	if st := capi.Rpcnet_call_send_last(call, req); st != ok {
		fail("send %d", st)
	}
	fd := capi.Rpcnet_call_fd(call)
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, fd, &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}); err != nil {
		fail("epoll_ctl: %v", err)
	}
	var resp []byte
	for {
		var b capi.Buf
		st := capi.Rpcnet_call_recv(call, 0, &b)
		if st == ok {
			if m := b.Take(); resp == nil {
				resp = m
			}
			continue
		}
		if st == endOfStream {
			break
		}
		p.rc.Read(func(uintptr) bool {
			n, _ := syscall.EpollWait(p.epfd, p.evs, 0)
			return n > 0
		})
	}
	syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
	return finish(call, resp)
}

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: unarybench block|spinN|netpoll CA_FILE ADDR CALLS")
		os.Exit(2)
	}
	n, _ := strconv.Atoi(os.Args[4])
	cfg := capi.Rpcnet_config_new()
	capi.Rpcnet_config_set(cfg, "ca_file", os.Args[2])
	capi.Rpcnet_config_set(cfg, "server_name", "localhost")
	cli := capi.Rpcnet_client_connect(cfg, os.Args[3])
	capi.Rpcnet_config_free(cfg)
	if cli == 0 {
		fail("connect: %s", capi.Rpcnet_last_error())
	}
	defer capi.Rpcnet_client_close(cli)
	var unary func(capi.Client, []byte) []byte
	switch v := os.Args[1]; {
	case v == "block":
		unary = block
	case strings.HasPrefix(v, "spin"):
		us, err := strconv.Atoi(strings.TrimPrefix(v, "spin"))
		if err != nil {
			fail("bad variant %s", v)
		}
		unary = spin(time.Duration(us) * time.Microsecond)
	case v == "netpoll":
		unary = newPoller().unary
	default:
		fail("bad variant %s", v)
	}
	payload := make([]byte, 64)
	times := make([]float64, 0, n)
	for i := 0; i < n+n/10; i++ { // the first tenth warms up
		t0 := time.Now()
		if r := unary(cli, payload); len(r) != len(payload) {
			fail("echo: %d bytes", len(r))
		}
		if i >= n/10 {
			times = append(times, float64(time.Since(t0).Nanoseconds())/1000)
		}
	}
	sort.Float64s(times)
	fmt.Printf("%.1f %.1f\n", times[n/2], times[int(float64(n)*0.99)])
}
