package rpcnet

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The Go cluster worker (examples/cluster/go) as a real process next to the
// C worker and the C director (examples/cluster/c) of the build tree
// ($RPCNET_BUILD_DIR, default ../../build): mixed-language membership and
// routed calls, stdin commands, SIGTERM, a wrong key. Skipped when the C
// examples are not built.

type proc struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string
	all   []string // every line read so far (for failure messages)
}

func startProc(t *testing.T, name, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, cmd: cmd, stdin: stdin, lines: make(chan string, 1024)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	})
	return p
}

// expect reads lines until one matches re (up to 15 s) and returns its
// submatches.
func (p *proc) expect(re string) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.After(15 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("%s: output ended before /%s/; got %q", p.name, re, p.all)
			}
			p.all = append(p.all, l)
			if m := rx.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-timeout:
			p.t.Fatalf("%s: no line /%s/ within 15 s; got %q", p.name, re, p.all)
		}
	}
}

func (p *proc) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("%s: stdin: %v", p.name, err)
	}
}

// wait waits for the exit (up to 10 s) and returns the exit status.
func (p *proc) wait() int {
	p.t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
		p.t.Fatalf("%s did not exit", p.name)
	}
	return p.cmd.ProcessState.ExitCode()
}

// buildWorker builds examples/cluster/go into a temporary directory.
func buildWorker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cluster_worker_go")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = "../../examples/cluster/go"
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build examples/cluster/go: %v\n%s", err, out)
	}
	return bin
}

func TestClusterWorkerProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("real processes")
	}
	build := os.Getenv("RPCNET_BUILD_DIR")
	if build == "" {
		build = "../../build"
	}
	cworker := filepath.Join(build, "examples", "cluster_worker")
	director := filepath.Join(build, "examples", "cluster_director")
	for _, f := range []string{cworker, director} {
		if _, err := os.Stat(f); err != nil {
			t.Skipf("%s not built", f)
		}
	}
	gworker := buildWorker(t)
	tls := []string{"--cert", cert("server.pem"), "--key", cert("server-key.pem"), "--ca", cert("ca.pem")}
	args := func(extra ...string) []string { return append(append([]string{}, tls...), extra...) }

	c := startProc(t, "C worker", cworker, args("--name", "cw", "--keys", testKey, "--tag", "role=worker", "--probe-ms", "200")...)
	seed := "127.0.0.1:" + c.expect(`^ready cw gossip (\d+) rpc \d+$`)[1]
	g := startProc(t, "Go worker", gworker, args("--name", "gw", "--keys", testKey, "--join", seed, "--probe-ms", "200", "--tag", "zone=eu")...)
	m := g.expect(`^ready gw gossip (\d+) rpc (\d+)$`)
	if port, _ := strconv.Atoi(m[2]); port <= 0 {
		t.Fatalf("rpc port %q", m[2])
	}
	g.expect(`^event joined cw alive$`)
	c.expect(`^event joined gw alive$`)

	// The C director spreads "work" calls over both workers.
	out, err := exec.Command(director, "--ca", cert("ca.pem"), "--join", seed, "--expect", "2",
		"--calls", "20", "--keys", testKey).CombinedOutput()
	if err != nil {
		t.Fatalf("director: %v\n%s", err, out)
	}
	for _, lang := range []string{"go", "c"} {
		m := regexp.MustCompile(`(?m)^lang ` + lang + ` (\d+)$`).FindSubmatch(out)
		if n, _ := strconv.Atoi(string(m2(m))); n <= 0 {
			t.Fatalf("no call served by the %s worker:\n%s", lang, out)
		}
	}
	if !strings.Contains(string(out), "served gw ") || !strings.Contains(string(out), "failed 0") {
		t.Fatalf("director output:\n%s", out)
	}

	// Commands on stdin: tags (seen by the C worker), members.
	g.send("tag stage=beta")
	g.expect(`^tagged stage=beta$`)
	c.expect(`^event updated gw alive$`)
	g.send("members")
	g.expect(`^member cw alive c$`)
	g.expect(`^members end$`)

	// leave: "left OK", exit 0, the C worker sees it as left.
	g.send("leave")
	g.expect(`^left OK$`)
	if code := g.wait(); code != 0 {
		t.Fatalf("Go worker exit status %d after leave", code)
	}
	c.expect(`^event left gw left$`)

	// SIGTERM leaves gracefully too; EOF on stdin is ignored until then.
	h := startProc(t, "Go worker 2", gworker, args("--name", "gw2", "--lang", "golang", "--keys", testKey, "--join", seed)...)
	h.expect(`^ready gw2 gossip \d+ rpc \d+$`)
	h.stdin.Close()
	c.expect(`^event joined gw2 alive$`)
	h.cmd.Process.Signal(syscall.SIGTERM)
	h.expect(`^left OK$`)
	if code := h.wait(); code != 0 {
		t.Fatalf("Go worker exit status %d after SIGTERM", code)
	}
	c.expect(`^event left gw2 left$`)

	// A wrong key: the join fails, exit status 3, the error on stderr.
	w := exec.Command(gworker, args("--name", "gwx", "--keys", "fedcba9876543210fedcba9876543210", "--join", seed)...)
	stderr, _ := w.StderrPipe()
	w.Start()
	msg, _ := io.ReadAll(stderr)
	w.Wait()
	if code := w.ProcessState.ExitCode(); code != 3 || !strings.Contains(string(msg), "PERMISSION_DENIED") ||
		!strings.Contains(string(msg), "cluster_keys") {
		t.Fatalf("wrong key: exit %d, stderr %q", code, msg)
	}
	c.send("leave") // the last member: nobody confirms (DEADLINE_EXCEEDED)
	c.expect(`^left [A-Z_]+$`)
	if code := c.wait(); code != 0 {
		t.Fatalf("C worker exit status %d", code)
	}
	t.Logf("go worker: %q", g.all)
}

func m2(m [][]byte) []byte {
	if len(m) < 2 {
		return nil
	}
	return m[1]
}
