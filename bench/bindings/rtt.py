"""Python row of bench/bindings/run.sh: unary 64 B round trips, one in flight.

    python3 rtt.py CA_FILE ADDR CALLS   ->  prints "p50_us p99_us"
"""
import sys
import time

import rpcnet


def main() -> None:
    ca, addr, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    payload = b"x" * 64
    times = []
    with rpcnet.connect(addr, ca_file=ca, server_name="localhost") as client:
        for i in range(n + n // 10):  # the first tenth warms up
            t0 = time.perf_counter_ns()
            client.call_raw("echo", payload, timeout=5.0)
            dt = (time.perf_counter_ns() - t0) / 1000.0
            if i >= n // 10:
                times.append(dt)
    times.sort()
    print(f"{times[n // 2]:.1f} {times[int(n * 0.99)]:.1f}")


if __name__ == "__main__":
    main()
