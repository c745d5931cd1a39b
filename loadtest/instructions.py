#!/usr/bin/env python3
"""Instructions per request: banyan against nginx and a bare hyper proxy, counted by
callgrind, so the figures do not move with the machine's neighbours.

    make bench-instructions                       # banyan, nginx, bare hyper
    python3 loadtest/instructions.py --against /path/to/other/banyan

The CPU-seconds figures of run.py swing by 30% or more when the hypervisor steals time
(seen: 1.64x nginx on a quiet machine, 2.17x with 17% steal, in runs minutes apart).
Instruction counts do not: each proxy runs under `valgrind --tool=callgrind`, one worker,
and serves 200 + N sequential keep-alive GETs of a 1 KB body; a run with only the 200 is
subtracted, so start-up, shut-down and what the first requests set up once cancel out.
What remains is the cost of N requests plus whatever the proxy does on its own while
they run (timers), divided by N. Results go to loadtest/results/instructions.md.

Callgrind counts user-space instructions only: the kernel's work for each proxy's system
calls is not in them. nginx spends more of its time in the kernel than banyan or hyper
do, so the ratio to nginx here is not the ratio of CPU time that run.py measures. The
figures are for comparing builds (--against) and banyan with the bare hyper proxy, its
floor.

Loopback only. Programs come from target/release (built by `make bench-build`).
"""

import argparse
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import (  # noqa: E402
    BIN, PATH, RESULTS, BenchUpstream, banyan_config, free_port, haproxy_command,
    nginx_command, short_commit, wait_listening, write_results,
)

BODY = 1024
WARM_UP = 200


class Run:
    def __init__(self, tmp, upstream, binaries):
        self.tmp = tmp
        self.upstream = upstream
        # banyan's builds by name: this one, and the one given with --against.
        self.binaries = binaries

    def command(self, proxy, port):
        """The command line of `proxy` listening on `port`."""
        if proxy.startswith("banyan"):
            binary = self.binaries[proxy]
            path = os.path.join(self.tmp, f"banyan-{port}.toml")
            store = os.path.join(self.tmp, f"diffs-{port}.sqlite")
            with open(path, "w") as f:
                # run.py's scenario b: one forward route (its other upstreams stay idle).
                upstreams = {"a": self.upstream, "b": self.upstream, "slow": self.upstream}
                f.write(banyan_config(port, upstreams, store,
                                      'action = "forward"\nupstream = "legacy"'))
            return [binary, "run", "-c", path, "--threads", "1"]
        if proxy == "nginx":
            # One process, as banyan runs one worker here.
            prefix = os.path.join(self.tmp, f"nginx-{port}")
            upstreams = {"a": self.upstream, "b": self.upstream}
            return nginx_command(prefix, port, upstreams, 1, master=False)
        if proxy == "haproxy":
            prefix = os.path.join(self.tmp, f"haproxy-{port}")
            return haproxy_command(prefix, port, self.upstream, 1)
        return [f"{BIN}/bare-hyper", "--listen", f"127.0.0.1:{port}",
                "--upstream", self.upstream, "--threads", "1"]

    def instructions(self, proxy, requests, keep=None):
        """Instructions the proxy executed from start to exit, serving `requests`; its
        callgrind output is copied to `keep` when given."""
        port = free_port()
        out = os.path.join(self.tmp, f"callgrind-{port}.out")
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
            + self.command(proxy, port),
            env={**os.environ, "BANYAN_LOG": "warn"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            wait_listening(port, proc, timeout=120)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            for _ in range(requests):
                conn.request("GET", PATH, headers={"accept": "application/json"})
                resp = conn.getresponse()
                body = resp.read()
                if resp.status != 200 or len(body) != BODY:
                    raise RuntimeError(f"{proxy}: {resp.status}, {len(body)} bytes")
            conn.close()
        finally:
            # nginx ends at once on SIGQUIT only after its connections close; SIGTERM
            # is a fast shutdown for all three.
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
        if keep:
            shutil.copy(out, keep)
        with open(out) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    return int(line.split()[1])
        raise RuntimeError(f"{proxy}: no totals in {out}")

    def per_request(self, proxy, requests, keep=None):
        # Both runs serve the warm-up requests, so what the first requests set up once
        # (pooled connections, metrics series, lazily built state) cancels out too.
        base = self.instructions(proxy, WARM_UP, keep and keep + ".base")
        full = self.instructions(proxy, WARM_UP + requests, keep)
        return (full - base) / requests


# Frames every task passes through: their inclusive cost is the whole run's.
ROOTS = (
    "PROGRAM TOTALS", "backtrace", "thread_start", "start_thread", "FnOnce::call_once",
    "tokio::runtime::", "lang_start", "__libc_start", "_start", "main",
    "tokio::task::", "std::thread", "<core::panic::unwind_safe",
)


def inclusive_costs(callgrind_out):
    """Each function's inclusive cost in a run's callgrind output (the function table
    only, not the annotated sources after it)."""
    text = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", "--auto=no",
         callgrind_out],
        capture_output=True, text=True, check=True,
    ).stdout
    costs = {}
    row = re.compile(r"^\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(.*)$")
    for line in text.splitlines():
        m = row.match(line)
        if not m:
            continue
        # "file:function [object]": the function says enough; "=>" lines are calls.
        name = m.group(2).split(" [")[0].strip()
        if name.startswith(("=>", "???", "*")) or name in ("PROGRAM TOTALS", "events annotated"):
            continue
        name = name.split(":", 1)[-1] if ".rs:" in name or ".c:" in name or ".S:" in name else name
        costs[name] = max(costs.get(name, 0), int(m.group(1).replace(",", "")))
    return costs


def inclusive_top(full_out, base_out, requests, top=20):
    """The `top` functions by inclusive cost per request: the run with `requests` more
    requests less the warm-up run, so start-up cancels out as in the totals."""
    full, base = inclusive_costs(full_out), inclusive_costs(base_out)
    rows = [
        ((cost - base.get(name, 0)) / requests, name)
        for name, cost in full.items()
        if not any(root in name for root in ROOTS)
    ]
    rows.sort(reverse=True)
    return rows[:top]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--against", help="another banyan binary, measured beside this one")
    parser.add_argument("--out", default=os.path.join(RESULTS, "instructions.md"))
    parser.add_argument("--profile", action="store_true",
                        help="add each banyan build's top 20 functions by inclusive cost")
    parser.add_argument("--keep", metavar="DIR",
                        help="with --profile: keep the callgrind files there, for "
                             "callgrind_annotate or kcachegrind")
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("valgrind not found (make bench-instructions installs it)")
    with tempfile.TemporaryDirectory() as tmp, BenchUpstream(BODY) as upstream:
        binaries = {"banyan": f"{BIN}/banyan"}
        if args.against:
            binaries["banyan (--against)"] = args.against
        run = Run(tmp, upstream.addr, binaries)
        proxies = ["nginx", "bare hyper", *binaries]
        if shutil.which("haproxy") or os.path.exists("/usr/sbin/haproxy"):
            proxies.insert(1, "haproxy")
        figures = {}
        profiles = {}
        for proxy in proxies:
            print(f"  {proxy} ...", file=sys.stderr, flush=True)
            keep = None
            if args.profile and proxy in binaries:
                keep = os.path.join(tmp, f"profile-{len(profiles)}.out")
            figures[proxy] = run.per_request(proxy, args.requests, keep)
            if keep:
                profiles[proxy] = inclusive_top(keep, keep + ".base", args.requests)
                if args.keep:
                    os.makedirs(args.keep, exist_ok=True)
                    name = proxy.split()[0] + ("-against" if "against" in proxy else "")
                    shutil.copy(keep, os.path.join(args.keep, f"{name}.callgrind"))
                    shutil.copy(keep + ".base", os.path.join(args.keep, f"{name}.base.callgrind"))
    head = short_commit()
    lines = [
        "# Instructions per request (callgrind)",
        "",
        f"banyan {head}; {args.requests} sequential keep-alive GETs of a {BODY} B body "
        f"after {WARM_UP} to warm up, one worker; user-space instructions only "
        "(the kernel's work is not counted, see instructions.py).",
        "",
        "| proxy | instructions / request | x bare hyper | x nginx |",
        "| --- | ---: | ---: | ---: |",
    ]
    for proxy, n in figures.items():
        lines.append(
            f"| {proxy} | {n:,.0f} | {n / figures['bare hyper']:.2f} | {n / figures['nginx']:.2f} |"
        )
    for proxy, top in profiles.items():
        lines += [
            "",
            f"### {proxy}: top 20 functions by inclusive cost",
            "",
            f"Instructions per request: the run of {WARM_UP + args.requests} requests less "
            f"the run of {WARM_UP}, per request (start-up cancels out). Inclusive: a "
            "function's cost holds its callees'; the runtime's roots are left out.",
            "",
            "| instructions / request | function |",
            "| ---: | --- |",
        ]
        lines += [f"| {cost:,.0f} | `{name}` |" for cost, name in top]
    write_results(lines, args.out)


if __name__ == "__main__":
    main()
