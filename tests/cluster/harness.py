"""Real processes for cluster tests: the C example worker and director
(examples/cluster/c) on loopback, followed through their stdout lines.

Every line a process prints is kept with the monotonic time it arrived, so a
test can ask "when did w1 first print 'event failed w2'" and the figures
script can report those intervals. Tests assert outcomes, never timings.
"""
import os
import re
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(os.environ.get("RPCNET_BUILD_DIR", os.path.join(ROOT, "build")))
KEY = "0123456789abcdef0123456789abcdef"  # hex, 16 bytes
OTHER_KEY = "fedcba9876543210fedcba9876543210"


def certs():
    d = os.path.join(BUILD, "cluster-certs")
    subprocess.run(["bash", os.path.join(ROOT, "scripts", "gen-certs.sh"), d], check=True)
    return d


class Proc:
    """A child process whose stdout lines are collected with timestamps."""

    def __init__(self, argv, name):
        self.name = name
        self.argv = argv
        self.lines = []  # (monotonic time, line)
        self.cv = threading.Condition()
        self.p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, bufsize=1)
        self.err = []
        self.readers = [threading.Thread(target=self._read, args=(f, out), daemon=True)
                        for f, out in ((self.p.stdout, self.lines), (self.p.stderr, self.err))]
        for t in self.readers:
            t.start()

    def _read(self, f, out):
        for line in f:
            with self.cv:
                out.append((time.monotonic(), line.rstrip("\n")))
                self.cv.notify_all()
        with self.cv:
            self.cv.notify_all()

    def wait_line(self, pattern, timeout=30.0, since=0.0):
        """The first (time, match) of a stdout line matching pattern that
        arrived at or after `since`; raises AssertionError on timeout."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        with self.cv:
            while True:
                for t, line in self.lines:
                    if t >= since:
                        m = rx.search(line)
                        if m:
                            return t, m
                left = end - time.monotonic()
                if left <= 0:
                    raise AssertionError("%s: no line matching %r within %.0f s; stdout:\n%s\nstderr:\n%s"
                                         % (self.name, pattern, timeout, self.tail(), self.tail(self.err)))
                self.cv.wait(min(left, 0.2))

    def find(self, pattern, since=0.0):
        rx = re.compile(pattern)
        with self.cv:
            return [(t, rx.search(l)) for t, l in self.lines if t >= since and rx.search(l)]

    def tail(self, src=None, n=40):
        with self.cv:
            return "\n".join(l for _, l in (self.lines if src is None else src)[-n:])

    def wait(self, timeout=30):
        """Waits for the exit and for every line it printed; returns the
        exit status."""
        rc = self.p.wait(timeout)
        for t in self.readers:
            t.join(5)
        return rc

    def send(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def kill9(self):
        self.p.kill()
        self.p.wait()

    def stop(self, timeout=10):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode


class Cluster:
    """Starts workers and a director; stops everything at the end."""

    def __init__(self, probe_ms=None):
        self.pki = certs()
        self.procs = []
        self.probe_ms = probe_ms
        self.seed = None

    def worker(self, name, key=KEY, join=True, tags=(), gossip="127.0.0.1:0", lang="c"):
        argv = [os.path.join(BUILD, "examples", "cluster_worker"), "--name", name,
                "--cert", os.path.join(self.pki, "server.pem"),
                "--key", os.path.join(self.pki, "server-key.pem"),
                "--ca", os.path.join(self.pki, "ca.pem"), "--gossip", gossip, "--lang", lang,
                "--tag", "role=worker"]
        if key:
            argv += ["--keys", key]
        if self.probe_ms:
            argv += ["--probe-ms", str(self.probe_ms)]
        for t in tags:
            argv += ["--tag", t]
        if join and self.seed:
            argv += ["--join", self.seed]
        p = Proc(argv, name)
        self.procs.append(p)
        return p

    def start_worker(self, name, **kw):
        p = self.worker(name, **kw)
        _, m = p.wait_line(r"^ready \S+ gossip (\d+) rpc (\d+)")
        p.gossip_port = int(m.group(1))
        p.rpc_port = int(m.group(2))
        if self.seed is None:
            self.seed = "127.0.0.1:%d" % p.gossip_port
        return p

    def director(self, *extra, name="director", key=KEY):
        argv = [os.path.join(BUILD, "examples", "cluster_director"), "--name", name,
                "--ca", os.path.join(self.pki, "ca.pem"), "--join", self.seed] + list(extra)
        if key:
            argv += ["--keys", key]
        p = Proc(argv, name)
        self.procs.append(p)
        return p

    def close(self):
        for p in self.procs:
            try:
                p.stop(5)
            except Exception:
                pass
