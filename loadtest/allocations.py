#!/usr/bin/env python3
"""Heap allocations per forwarded request: banyan built with a global allocator that
counts (loadtest/src/bin/banyan-counted.rs, `--features count-allocations`), serving the
workload of instructions.py (sequential keep-alive GETs of a 1 KB body, one forward
route, one worker). Two runs, with WARM_UP and WARM_UP + N requests; the difference over
N is what one request allocates, start-up and shut-down cancelling out.

    make bench-allocations
    python3 loadtest/allocations.py --against /path/to/other/banyan-counted

Loopback only. Results go to loadtest/results/allocations.md.
"""

import argparse
import http.client
import os
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import (  # noqa: E402
    BIN, PATH, RESULTS, BenchUpstream, banyan_config, free_port, short_commit,
    wait_listening, write_results,
)

BODY = 1024
WARM_UP = 200


def allocations(binary, upstream, tmp, requests):
    port = free_port()
    path = os.path.join(tmp, f"banyan-{port}.toml")
    upstreams = {"a": upstream, "b": upstream, "slow": upstream}
    with open(path, "w") as f:
        f.write(banyan_config(port, upstreams, os.path.join(tmp, f"d-{port}.sqlite"),
                              'action = "forward"\nupstream = "legacy"'))
    proc = subprocess.Popen([binary, path], env={**os.environ, "BANYAN_LOG": "warn"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_listening(port, proc)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for _ in range(requests):
            conn.request("GET", PATH, headers={"accept": "application/json"})
            resp = conn.getresponse()
            if resp.status != 200 or len(resp.read()) != BODY:
                raise RuntimeError(f"{binary}: {resp.status}")
        conn.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    for line in err.splitlines():
        if line.startswith("allocations: "):
            return int(line.split()[1])
    raise RuntimeError(f"{binary}: no count in its output:\n{err}")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--against", help="another banyan-counted binary, measured beside this one")
    parser.add_argument("--out", default=os.path.join(RESULTS, "allocations.md"))
    args = parser.parse_args()
    binaries = {"banyan": f"{BIN}/banyan-counted"}
    if args.against:
        binaries["banyan (--against)"] = args.against
    with tempfile.TemporaryDirectory() as tmp, BenchUpstream(BODY) as upstream:
        figures = {}
        for name, binary in binaries.items():
            base = allocations(binary, upstream.addr, tmp, WARM_UP)
            full = allocations(binary, upstream.addr, tmp, WARM_UP + args.requests)
            figures[name] = (full - base) / args.requests
    head = short_commit()
    lines = [
        "# Heap allocations per request",
        "",
        f"banyan {head}; {args.requests} sequential keep-alive GETs of a {BODY} B body after "
        f"{WARM_UP} to warm up, one forward route, one worker; allocations and "
        "reallocations counted by a global allocator (loadtest/src/bin/banyan-counted.rs).",
        "",
        "| build | allocations / request |",
        "| --- | ---: |",
    ]
    lines += [f"| {name} | {n:.2f} |" for name, n in figures.items()]
    write_results(lines, args.out)


if __name__ == "__main__":
    main()
