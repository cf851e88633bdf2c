"""Cluster behaviour with real processes on loopback (issue: Cluster).

A director and C workers (examples/cluster/c) gossip over UDP with a cluster
key and call each other over QUIC. The tests assert outcomes; the intervals
they observe are printed and written to BUILD/cluster-figures.json (for
docs/cluster.md), never asserted.
"""
import json
import os
import shutil
import subprocess

import pytest

from harness import BUILD, OTHER_KEY, Cluster

FIGURES = {}


def record(name, seconds):
    FIGURES[name] = round(seconds, 3)
    print("figure %s = %.3f s" % (name, seconds))
    with open(os.path.join(BUILD, "cluster-figures.json"), "w") as f:
        json.dump(FIGURES, f, indent=1, sort_keys=True)


@pytest.fixture
def cluster():
    c = Cluster()
    yield c
    c.close()


def test_kill9_failover_and_dead_everywhere(cluster):
    w1 = cluster.start_worker("w1")
    w2 = cluster.start_worker("w2")
    w3 = cluster.start_worker("w3")
    d = cluster.director("--expect", "3", "--calls", "0", "--interval-ms", "5", "--log-calls")
    d.wait_line(r"^ready director")
    d.wait_line(r"^call \d+ OK w2")  # w2 takes its share before the crash
    t_kill = d.wait_line(r"^call \d+ OK")[0]
    w2.kill9()
    # Every other node declares w2 dead (failed, not left).
    dead_at = {}
    for p in (w1, w3, d):
        dead_at[p.name] = p.wait_line(r"^event failed w2 dead", timeout=60, since=t_kill)[0]
    t_end = d.wait_line(r"^call \d+ OK", since=max(dead_at.values()) + 2.0)[0]
    d.send("quit")
    d.wait_line(r"^failed \d+", timeout=10)
    bad = [m.string for _, m in d.find(r"^call \d+ (?!OK)")]
    assert d.find(r"^failed 0$"), "idempotent calls failed:\n" + "\n".join(bad)
    assert d.p.wait(10) == 0
    served_after = [t for t, _ in d.find(r"^call \d+ OK w2", since=t_kill)]
    last_w2 = max(served_after) if served_after else t_kill
    # The director stopped choosing w2 (nothing served by it at the end).
    assert not d.find(r"^call \d+ \S+ w2", since=last_w2 + 0.001)
    assert d.find(r"^call \d+ OK w[13]", since=last_w2)
    record("kill9_director_stops_choosing_s", last_w2 - t_kill)
    record("kill9_first_dead_s", min(dead_at.values()) - t_kill)
    record("kill9_all_dead_s", max(dead_at.values()) - t_kill)
    assert t_end > t_kill


def test_graceful_leave_seen_as_left(cluster):
    w1 = cluster.start_worker("w1")
    w2 = cluster.start_worker("w2")
    w3 = cluster.start_worker("w3")
    for p in (w1, w2):
        p.wait_line(r"^event joined w3")
    t0 = __import__("time").monotonic()
    w3.send("leave")
    w3.wait_line(r"^left OK")
    seen = [p.wait_line(r"^event left w3 left", timeout=30, since=t0)[0] for p in (w1, w2)]
    assert not w1.find(r"^event failed w3") and not w2.find(r"^event failed w3")
    assert w3.p.wait(10) == 0
    record("leave_seen_everywhere_s", max(seen) - t0)


def test_restarted_worker_rejoins_and_serves(cluster):
    w1 = cluster.start_worker("w1")
    w2 = cluster.start_worker("w2")
    w2.kill9()
    w1.wait_line(r"^event failed w2", timeout=60)
    t0 = __import__("time").monotonic()
    w2b = cluster.start_worker("w2")
    w1.wait_line(r"^event (recovered|joined) w2 alive", since=t0)
    d = cluster.director("--expect", "2", "--calls", "40", "--strategy", "round_robin",
                         "--log-calls")
    d.wait_line(r"^failed 0$")
    assert d.find(r"^call \d+ OK w2$"), d.tail()
    assert w2b.p.poll() is None


def test_tag_change_reaches_everyone(cluster):
    w1 = cluster.start_worker("w1")
    w2 = cluster.start_worker("w2")
    w3 = cluster.start_worker("w3")
    for p in (w1, w2):
        p.wait_line(r"^event joined w3")
    t0 = __import__("time").monotonic()
    w1.send("tag zone=eu")
    seen = [p.wait_line(r"^event updated w1 alive", since=t0)[0] for p in (w2, w3)]
    record("tag_change_seen_everywhere_s", max(seen) - t0)
    d = cluster.director("--filter", "zone=eu", "--expect", "1", "--calls", "20", "--log-calls")
    d.wait_line(r"^failed 0$")
    served = {m.group(1) for _, m in d.find(r"^served (\S+) \d+")}
    assert served == {"w1"}, d.tail()


def test_wrong_key_cannot_join_and_says_why(cluster):
    cluster.start_worker("w1")
    bad = cluster.worker("intruder", key=OTHER_KEY)
    assert bad.wait(30) == 3
    errors = "\n".join(l for _, l in bad.err)
    assert "PERMISSION_DENIED" in errors and "cluster_keys" in errors, errors


def test_no_key_is_refused_by_keyed_cluster(cluster):
    cluster.start_worker("w1")
    bad = cluster.worker("plain", key=None)
    assert bad.wait(30) == 3
    errors = "\n".join(l for _, l in bad.err)
    assert "PERMISSION_DENIED" in errors, errors


@pytest.mark.skipif(shutil.which("iptables") is None or os.geteuid() != 0,
                    reason="needs root and iptables (scripts/install-deps.sh installs it)")
def test_partition_heals_without_manual_action(cluster):
    w1 = cluster.start_worker("w1")
    w2 = cluster.start_worker("w2")
    w3 = cluster.start_worker("w3")
    for p in (w1, w2):
        p.wait_line(r"^event joined w3")
    # w3's gossip port cut off both ways (its RPC port stays reachable).
    rules = [["INPUT", "-p", "udp", "--dport", str(w3.gossip_port), "-j", "DROP"],
             ["OUTPUT", "-p", "udp", "--sport", str(w3.gossip_port), "-j", "DROP"]]
    for rule in rules:
        subprocess.run(["iptables", "-I"] + rule, check=True)
    try:
        t_cut = __import__("time").monotonic()
        w1.wait_line(r"^event failed w3", timeout=60, since=t_cut)
        w2.wait_line(r"^event failed w3", timeout=60, since=t_cut)
        w3.wait_line(r"^event partitioned", timeout=60, since=t_cut)
    finally:
        for rule in rules:
            subprocess.run(["iptables", "-D"] + rule, check=True)
    t_heal = __import__("time").monotonic()
    back = [p.wait_line(r"^event recovered w3 alive", timeout=90, since=t_heal)[0] for p in (w1, w2)]
    w3.wait_line(r"^event healed", timeout=90, since=t_heal)
    record("partition_heal_s", max(back) - t_heal)
