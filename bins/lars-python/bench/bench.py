"""get_host + report pairs per second from Python, per call and leased, one thread, on each
backend. Run by `cargo xtask bench clients` with LARS_BENCH_AGENT, LARS_BENCH_MODID,
LARS_BENCH_SECONDS and LARS_LIBRARY; prints `<backend>-per-call N` and `<backend>-leased N`."""

import os
import time

import lars


def main() -> None:
    agents = os.environ["LARS_BENCH_AGENT"]
    modid = int(os.environ["LARS_BENCH_MODID"])
    seconds = float(os.environ["LARS_BENCH_SECONDS"])
    ok = lars.Outcome.OK
    for backend in ("native", "pure"):
        client = lars.Client(agents, timeout=0.2, retries=2, backend=backend)
        client.reg_init(modid, 1, 20)
        pairs, start = 0, time.monotonic()
        while time.monotonic() - start < seconds:
            for _ in range(64):
                host = client.get_host(modid, 1)
                client.report(modid, 1, host, ok, 0.0001)
            pairs += 64
        print(f"{backend}-per-call {pairs / (time.monotonic() - start):.0f}", flush=True)
        with client.lease(modid, 1) as lease:
            pairs, start = 0, time.monotonic()
            while time.monotonic() - start < seconds:
                for _ in range(1024):
                    host = lease.get_host()
                    lease.report(host, ok, 0.0001)
                pairs += 1024
            print(f"{backend}-leased {pairs / (time.monotonic() - start):.0f}", flush=True)


if __name__ == "__main__":
    main()
