#!/usr/bin/env python3
"""banyan against nginx, direct and bare proxies, in one run on one machine.

    make bench          # the full run: 3 rounds (about 8 minutes once built)
    make bench-quick    # one round of shorter phases (about 2 minutes once built)

Each scenario starts its proxy, warms it up, measures throughput with a closed loop at a
fixed concurrency (CPU seconds of the proxy from /proc over that phase), then latency at
one constant rate shared by all scenarios (latency counted from each request's due time,
so a stall is not hidden), then reads its peak RSS and stops it. Results go to
loadtest/results/latest.md and latest.json.

Pinning: the proxy gets the upper half of the cores, the generator and the upstreams the
lower half; every proxy runs as many workers as it has cores (banyan --threads, nginx
worker_processes, the bare proxies' runtimes). With one core nothing is pinned.

Loopback only. Programs come from target/release (built by `make bench`).
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
RESULTS = os.path.join(ROOT, "loadtest", "results")
CONNECTIONS = 64
PATH = "/api/items/42"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, timeout=20.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def fleet_server():
    """The PostgreSQL for the fleet-mode row: BANYAN_BENCH_POSTGRES, else the one on
    127.0.0.1:5432 when it answers and psql is there; None skips the row."""
    url = os.environ.get("BANYAN_BENCH_POSTGRES", "postgres://postgres@127.0.0.1:5432/postgres")
    if not shutil.which("psql"):
        return None
    probe = subprocess.run(["psql", "-q", url, "-c", "SELECT 1"], capture_output=True)
    return url if probe.returncode == 0 else None


def banyan_config(port, upstreams, store, route):
    """banyan on `port` with upstreams legacy, new and slow (`upstreams` a, b and slow) and
    one route, `items`, whose action is `route`."""
    return f"""default = "legacy"
[server]
listen = "127.0.0.1:{port}"
[admin]
listen = "127.0.0.1:{free_port()}"
[shadow]
store = "{store}"
[upstreams.legacy]
endpoints = ["http://{upstreams['a']}"]
[upstreams.new]
endpoints = ["http://{upstreams['b']}"]
[upstreams.slow]
endpoints = ["http://{upstreams['slow']}"]
read_timeout = "5s"

[[routes]]
name = "items"
match = {{ methods = ["GET"], path = {{ prefix = "/api/items" }} }}
{route}
"""


def nginx_command(prefix, port, upstreams, workers, mirror=False, master=True):
    """nginx as a keep-alive reverse proxy to upstream `a` (scenario c), mirroring to `b`
    with `mirror` (scenario e), its files under `prefix`: the command line to start it.
    Without `master`, one process serves (callgrind follows one)."""
    a, b = upstreams["a"], upstreams["b"]
    mirror_conf = (
        f"""
            mirror /mirror;
            mirror_request_body off;
        }}
        location = /mirror {{
            internal;
            proxy_pass http://b$request_uri;
            proxy_http_version 1.1;
            proxy_set_header Connection "";"""
        if mirror
        else ""
    )
    http = f"""
    upstream a {{ server {a}; keepalive 128; keepalive_requests 1000000; }}
    upstream b {{ server {b}; keepalive 128; keepalive_requests 1000000; }}
    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{
            proxy_pass http://a;
            proxy_http_version 1.1;
            proxy_set_header Connection "";{mirror_conf}
        }}
    }}"""
    return nginx_with(prefix, workers, http, master)


def nginx_with(prefix, workers, http, master=True):
    """nginx with the `http` block's servers and upstreams, its files under `prefix`,
    keep-alive unbounded as banyan keeps it, no access log: the command line."""
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    conf = f"""worker_processes {workers};
master_process {"on" if master else "off"};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    # Keep connections as banyan does: no cap on requests per connection either side.
    keepalive_requests 1000000;{http}
}}
"""
    path = os.path.join(prefix, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return [shutil.which("nginx") or "/usr/sbin/nginx", "-p", prefix, "-c", path]


def nginx_grpc_command(prefix, port, upstream, workers):
    """nginx's grpc_pass in front of the gRPC upstream, h2c both sides, keep-alive (the
    reference of the gRPC rows): the command line to start it."""
    http = f"""
    upstream g {{ server {upstream}; keepalive 128; keepalive_requests 1000000; }}
    server {{
        listen 127.0.0.1:{port} http2 reuseport;
        location / {{ grpc_pass grpc://g; }}
    }}"""
    return nginx_with(prefix, workers, http)


class BenchUpstream:
    """The test upstream (bench-upstream) on a free loopback port, answering `body` bytes
    at once, for the scripts that count per request (instructions.py, allocations.py)."""

    def __init__(self, body):
        port = free_port()
        self.addr = f"127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [f"{BIN}/bench-upstream", "--listen", self.addr, "--size", str(body),
             "--delay-ms", "0"],
            stdout=subprocess.DEVNULL,
        )
        wait_listening(port, self.proc)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()


def short_commit():
    """The checkout's commit, as the results name it."""
    return subprocess.run(["git", "-C", os.path.dirname(BIN), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True).stdout.strip()


def write_results(lines, out):
    """Print a result page and write it to `out`."""
    text = "\n".join(lines) + "\n"
    print(text)
    with open(out, "w") as f:
        f.write(text)


def haproxy_command(prefix, port, upstream, threads):
    """HAProxy as a keep-alive reverse proxy to `upstream` (a reference beside nginx):
    `threads` threads, idle server connections shared by every client (`http-reuse
    always`), no logging. The command line to start it in the foreground."""
    os.makedirs(prefix, exist_ok=True)
    conf = f"""global
    nbthread {threads}
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    http-reuse always
frontend proxy
    bind 127.0.0.1:{port}
    default_backend upstream
backend upstream
    server a {upstream} maxconn 1000
"""
    path = os.path.join(prefix, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(conf)
    return [shutil.which("haproxy") or "/usr/sbin/haproxy", "-db", "-f", path]


class Cores:
    def __init__(self):
        cpus = sorted(os.sched_getaffinity(0))
        self.count = len(cpus)
        if len(cpus) < 2:
            self.proxy = self.rest = set(cpus)
        else:
            half = len(cpus) // 2
            self.rest, self.proxy = set(cpus[:half]), set(cpus[half:])
        self.threads = len(self.proxy)

    def describe(self):
        if self.proxy == self.rest:
            return f"{self.count} core: nothing pinned"
        return (
            f"proxy on CPU {','.join(map(str, sorted(self.proxy)))} with {self.threads} "
            f"worker(s); generator and upstreams on CPU {','.join(map(str, sorted(self.rest)))}"
        )


def start(cmd, cpus, env=None, **kw):
    return subprocess.Popen(
        cmd,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
        env={**os.environ, **(env or {})},
        **kw,
    )


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tree(pid):
    """The pid and its descendants (nginx's workers), from /proc."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pid):
    """utime + stime of the process tree, all threads, in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / tick


def cpu_ticks(cpus):
    """(steal, total) ticks of the given CPUs, from /proc/stat."""
    steal = total = 0
    with open("/proc/stat") as f:
        for line in f:
            name, *fields = line.split()
            if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
                values = [int(v) for v in fields[:8]]
                steal += values[7] if len(values) > 7 else 0
                total += sum(values)
    return steal, total


def peak_rss_mb(pid):
    """VmHWM summed over the process tree."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class Bench:
    def __init__(self, args):
        self.args = args
        self.cores = Cores()
        self.tmp = tempfile.mkdtemp(prefix="banyan-bench-")
        self.procs = []
        self.upstreams = {}
        self.fleet_server = fleet_server()
        self.fleet_dbs = []

    # ------------------------------------------------------------------ processes

    def spawn(self, cmd, cpus, port, env=None, stdout=subprocess.DEVNULL):
        log = open(os.path.join(self.tmp, os.path.basename(cmd[0]) + ".log"), "ab")
        proc = start(cmd, cpus, env=env, stdout=stdout, stderr=log)
        self.procs.append(proc)
        wait_listening(port, proc)
        return proc

    def start_upstreams(self):
        port = free_port()
        self.spawn(
            [f"{BIN}/bench-grpc", "serve", "--listen", f"127.0.0.1:{port}", "--size", str(self.args.body)],
            self.cores.rest,
            port,
        )
        self.upstreams["grpc"] = f"127.0.0.1:{port}"
        for name, delay in [("a", 0), ("b", 0), ("slow", 1000)]:
            port = free_port()
            self.spawn(
                [
                    f"{BIN}/bench-upstream",
                    "--listen", f"127.0.0.1:{port}",
                    "--size", str(self.args.body),
                    "--delay-ms", str(delay),
                ],
                self.cores.rest,
                port,
            )
            self.upstreams[name] = f"127.0.0.1:{port}"

    def banyan(self, config, env=None, binary=None):
        path = os.path.join(self.tmp, "banyan.toml")
        with open(path, "w") as f:
            f.write(config)
        return (
            [binary or f"{BIN}/banyan", "run", "-c", path, "--threads", str(self.cores.threads)],
            {"BANYAN_LOG": "warn", **(env or {})},
        )

    def fleet(self, port):
        """b, in fleet mode: the same forward route, with a [fleet] table on a database of
        its own (heartbeat, config poll and LISTEN run beside the data plane)."""
        name = f"banyan_bench_{os.getpid()}_{port}"
        subprocess.run(["psql", "-q", self.fleet_server, "-c", f"CREATE DATABASE {name}"],
                       check=True, capture_output=True)
        self.fleet_dbs.append(name)
        url = self.fleet_server.rsplit("/", 1)[0] + "/" + name
        config = self.banyan_config(port, 'action = "forward"\nupstream = "legacy"')
        return self.banyan(config + '\n[fleet]\nheartbeat = "2s"\n',
                           {"BANYAN_FLEET_POSTGRES": url})

    def banyan_config(self, port, route):
        store = os.path.join(self.tmp, f"diffs-{port}.sqlite")
        return banyan_config(port, self.upstreams, store, route)

    def nginx(self, port, mirror):
        prefix = os.path.join(self.tmp, f"nginx-{port}")
        return nginx_command(prefix, port, self.upstreams, self.cores.threads, mirror), {}

    def grpc_scenarios(self):
        """The gRPC unary rows: (key, label, start), as `scenarios`."""
        g = self.upstreams["grpc"]
        yield "grpc_direct", "i. gRPC unary, direct to the upstream", None
        yield "grpc_banyan", "i. gRPC unary, banyan forward", lambda p: self.banyan(
            f'default = "g"\n[server]\nlisten = "127.0.0.1:{p}"\n[admin]\n'
            f'listen = "127.0.0.1:{free_port()}"\n[upstreams.g]\nendpoints = ["http://{g}"]\nhttp2 = true\n'
        )
        yield "grpc_nginx", "i. gRPC unary, nginx grpc_pass", lambda p: (
            nginx_grpc_command(os.path.join(self.tmp, f"nginx-grpc-{p}"), p, g, self.cores.threads),
            {},
        )

    def scenarios(self):
        """(key, label, start) where start(port) gives (command, env), or None for direct."""
        a = self.upstreams["a"]
        threads = str(self.cores.threads)
        yield "direct", "a. direct to the upstream", None
        yield "banyan", "b. banyan forward", lambda p: self.banyan(
            self.banyan_config(p, 'action = "forward"\nupstream = "legacy"')
        )
        if self.args.against:
            yield "banyan_against", "b3. banyan forward, the --against build", lambda p: self.banyan(
                self.banyan_config(p, 'action = "forward"\nupstream = "legacy"'),
                binary=self.args.against,
            )
        if self.fleet_server:
            yield "banyan_fleet", "b2. banyan forward, fleet mode", self.fleet
        yield "banyan_access_log", "b4. banyan forward, access log (JSON, to a file)", lambda p: self.banyan(
            self.banyan_config(p, 'action = "forward"\nupstream = "legacy"')
            + f'\n[access_log]\npath = "{os.path.join(self.tmp, f"access-{p}.log")}"\n'
        )
        # The collector is the test upstream, which answers any POST with a 200.
        yield "banyan_tracing", "b5. banyan forward, traced at 1% (OTLP/HTTP)", lambda p: self.banyan(
            self.banyan_config(p, 'action = "forward"\nupstream = "legacy"')
            + f'\n[tracing]\nendpoint = "http://{a}/v1/traces"\npercent = 1\n'
        )
        yield "banyan_capture", "b6. banyan forward, capture 1% (gzip JSON lines)", lambda p: self.banyan(
            self.banyan_config(p, 'action = "forward"\nupstream = "legacy"\ncapture = { percent = 1 }')
            + f'\n[capture]\ndir = "{os.path.join(self.tmp, f"captures-{p}")}"\n'
        )
        yield "nginx", "c. nginx reverse proxy", lambda p: self.nginx(p, mirror=False)
        yield "banyan_shadow", "d. banyan shadow 100% + compare", lambda p: self.banyan(
            self.banyan_config(p, 'action = "shadow"\nupstream = "legacy"\nshadow = { to = "new" }')
        )
        if shutil.which("haproxy") or os.path.exists("/usr/sbin/haproxy"):
            yield "haproxy", "c2. HAProxy reverse proxy", lambda p: (
                haproxy_command(os.path.join(self.tmp, f"haproxy-{p}"), p, a, self.cores.threads),
                {},
            )
        yield "nginx_mirror", "e. nginx mirror", lambda p: self.nginx(p, mirror=True)
        yield "banyan_slow_shadow", "f. banyan shadow, shadow waits 1 s", lambda p: self.banyan(
            self.banyan_config(p, 'action = "shadow"\nupstream = "legacy"\nshadow = { to = "slow" }')
        )
        yield "banyan_2000", "g. banyan, 2,000 routes (match last)", self.many_routes
        yield "bare_hyper", "h. bare hyper proxy", lambda p: (
            [f"{BIN}/bare-hyper", "--listen", f"127.0.0.1:{p}", "--upstream", a, "--threads", threads],
            {},
        )
        if os.path.exists(f"{BIN}/bare-pingora"):
            yield "bare_pingora", "h. bare pingora 0.9 proxy", lambda p: (
                [f"{BIN}/bare-pingora", "--listen", f"127.0.0.1:{p}", "--upstream", a, "--threads", threads],
                {},
            )

    def many_routes(self, port):
        config = subprocess.run(
            [
                f"{BIN}/bench-config",
                "--upstream", self.upstreams["a"],
                "--listen", f"127.0.0.1:{port}",
                "--admin", f"127.0.0.1:{free_port()}",
            ],
            check=True, capture_output=True, text=True,
        ).stdout
        return self.banyan(config)

    # ------------------------------------------------------------------ load

    def load(self, port, seconds, rate=None, path=PATH, grpc=False):
        if grpc:
            # 8 connections of 8 calls in flight: the 64 of the HTTP/1.1 rows.
            cmd = [f"{BIN}/bench-grpc", "load", "--url", f"http://127.0.0.1:{port}",
                   "--connections", "8", "--streams", "8", "--duration", str(seconds)]
        else:
            cmd = [
                f"{BIN}/bench-load",
                "--url", f"http://127.0.0.1:{port}{path}",
                "--connections", str(CONNECTIONS),
                "--duration", str(seconds),
            ]
        if rate:
            cmd += ["--rate", str(rate)]
        out = subprocess.run(
            cmd,
            preexec_fn=lambda: os.sched_setaffinity(0, self.cores.rest),
            check=True, capture_output=True, text=True,
        ).stdout
        return json.loads(out)

    def measure(self, key, label, starter, rate):
        path = "/bench/last/42" if key == "banyan_2000" else PATH
        grpc = key.startswith("grpc")
        if grpc:
            rate = None  # throughput and CPU per call; no constant-rate phase
        proc = None
        if starter is None:
            port = int(self.upstreams["grpc" if grpc else "a"].split(":")[1])
        else:
            port = free_port()
            cmd, env = starter(port)
            proc = self.spawn(cmd, self.cores.proxy, port, env=env)
        ticks_before = cpu_ticks(self.cores.proxy | self.cores.rest)
        try:
            self.load(port, self.args.warmup, path=path, grpc=grpc)
            before = cpu_seconds(proc.pid) if proc else None
            closed = self.load(port, self.args.seconds, path=path, grpc=grpc)
            cpu = cpu_seconds(proc.pid) - before if proc else None
            timed = self.load(port, self.args.latency_seconds, rate=rate, path=path) if rate else None
            rss = peak_rss_mb(proc.pid) if proc else None
        finally:
            if proc:
                stop(proc)
        # Time the hypervisor gave our CPUs (proxy's, generator's, upstreams') to someone
        # else: a noisy neighbour shows here, and tells which rounds to distrust.
        ticks_after = cpu_ticks(self.cores.proxy | self.cores.rest)
        stolen, elapsed = (a - b for a, b in zip(ticks_after, ticks_before))
        row = {
            "key": key,
            "steal_pct": 100 * stolen / elapsed if elapsed else 0.0,
            "label": label,
            "rps": closed["rps"],
            "requests": closed["requests"],
            "errors": closed["errors"] + closed["non_2xx"],
            "cpu_s_per_10k": cpu / closed["requests"] * 10_000 if cpu is not None else None,
            "peak_rss_mb": rss,
        }
        if timed:
            row.update(
                rate=rate,
                achieved_rate=timed["rps"],
                p50_ms=timed["p50_us"] / 1000,
                p99_ms=timed["p99_us"] / 1000,
                p999_ms=timed["p999_us"] / 1000,
                errors=row["errors"] + timed["errors"] + timed["non_2xx"],
            )
        return row

    def run(self):
        self.start_upstreams()
        try:
            rows = {}
            every = list(self.scenarios()) + list(self.grpc_scenarios())
            scenarios = [s for s in every if not self.args.only or s[0] in self.args.only]
            # One rate for every scenario, well below the saturation of banyan forward and
            # nginx (measured now, briefly), so latency is compared at equal load.
            calib = {}
            for key, label, starter in scenarios:
                if key in ("banyan", "nginx"):
                    port = free_port()
                    cmd, env = starter(port)
                    proc = self.spawn(cmd, self.cores.proxy, port, env=env)
                    try:
                        self.load(port, self.args.warmup)
                        calib[key] = self.load(port, self.args.warmup)["rps"]
                    finally:
                        stop(proc)
            rate = self.args.rate or max(500, int(min(calib.values()) * 0.4) // 500 * 500)
            print(f"constant rate for latency: {rate} req/s (calibration {calib})", file=sys.stderr)
            # Rounds in turn (a, b, c, ..., a, b, c, ...), so a slow minute of a shared
            # machine falls on every scenario alike; each figure is the median of rounds.
            runs = {key: [] for key, _, _ in scenarios}
            for n in range(self.args.rounds):
                for key, label, starter in scenarios:
                    print(f"  round {n + 1}/{self.args.rounds}: {label} ...", file=sys.stderr, flush=True)
                    runs[key].append(self.measure(key, label, starter, rate))
            rows = {key: combine(rounds) for key, rounds in runs.items()}
            return rate, rows
        finally:
            for p in self.procs:
                stop(p)
            shutil.rmtree(self.tmp, ignore_errors=True)
            for name in self.fleet_dbs:
                subprocess.run(["psql", "-q", self.fleet_server, "-c",
                                f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


def combine(rounds):
    """One row from a scenario's rounds: medians, errors summed, the highest peak RSS,
    and the rounds' spread of throughput and CPU kept for the record."""
    row = dict(rounds[0])
    for field in ("rps", "cpu_s_per_10k", "achieved_rate", "p50_ms", "p99_ms", "p999_ms", "steal_pct"):
        values = [r[field] for r in rounds if r.get(field) is not None]
        if values:
            row[field] = statistics.median(values)
    row["requests"] = sum(r["requests"] for r in rounds)
    row["errors"] = sum(r["errors"] for r in rounds)
    rss = [r["peak_rss_mb"] for r in rounds if r["peak_rss_mb"] is not None]
    row["peak_rss_mb"] = max(rss) if rss else None
    row["rounds"] = [
        {k: r.get(k) for k in ("rps", "cpu_s_per_10k", "p99_ms", "peak_rss_mb", "steal_pct")} for r in rounds
    ]
    return row


# ---------------------------------------------------------------------- report


def ratio(x, y):
    return x / y if x is not None and y else None


def paired(rows, key, field, reference="nginx"):
    """A scenario's figure over nginx's, round by round: the two ran minutes apart at
    most, so a slow spell of a shared machine falls on both. (median, low, high) or None."""
    if key not in rows or reference not in rows:
        return None
    pairs = zip(rows[key]["rounds"], rows[reference]["rounds"])
    ratios = sorted(x[field] / y[field] for x, y in pairs if x.get(field) and y.get(field))
    return (statistics.median(ratios), ratios[0], ratios[-1]) if ratios else None


def targets(rows):
    b, n = rows["banyan"], rows["nginx"]
    f, g = rows.get("banyan_slow_shadow"), rows.get("banyan_2000")
    out = [
        ("banyan forward CPU per request <= 1.25x nginx's",
         b["cpu_s_per_10k"] <= 1.25 * n["cpu_s_per_10k"],
         f"{b['cpu_s_per_10k']:.3f} vs {n['cpu_s_per_10k']:.3f} CPU s/10k req "
         f"({ratio(b['cpu_s_per_10k'], n['cpu_s_per_10k']):.2f}x)"),
        ("banyan forward throughput >= 0.9x nginx's",
         b["rps"] >= 0.9 * n["rps"],
         f"{b['rps']:.0f} vs {n['rps']:.0f} req/s ({ratio(b['rps'], n['rps']):.2f}x)"),
        ("banyan forward p99 within 0.5 ms of nginx's at the same rate",
         b["p99_ms"] <= n["p99_ms"] + 0.5,
         f"{b['p99_ms']:.2f} vs {n['p99_ms']:.2f} ms"),
    ]
    if f and g:
        out += [
            ("(f) hanging shadow: client p99 within 10% of (b)",
             f["p99_ms"] <= 1.1 * b["p99_ms"],
             f"{f['p99_ms']:.2f} vs {b['p99_ms']:.2f} ms"),
            ("(f) hanging shadow: RSS bounded (under 2x forward's)",
             f["peak_rss_mb"] < 2 * b["peak_rss_mb"],
             f"{f['peak_rss_mb']:.1f} vs {b['peak_rss_mb']:.1f} MB"),
            ("(g) 2,000 routes cost under 10% over (b), in CPU per request",
             g["cpu_s_per_10k"] < 1.1 * b["cpu_s_per_10k"],
             f"{g['cpu_s_per_10k']:.3f} vs {b['cpu_s_per_10k']:.3f} CPU s/10k req "
             f"({ratio(g['cpu_s_per_10k'], b['cpu_s_per_10k']):.2f}x); "
             f"throughput {ratio(g['rps'], b['rps']):.2f}x"),
        ]
    for key, what in (("banyan_access_log", "(b4) access log on"), ("banyan_tracing", "(b5) tracing at 1%"),
                      ("banyan_capture", "(b6) capture at 1%")):
        if key in rows:
            # Judged round by round against (b) beside it, as the fleet row is.
            by_round = paired(rows, key, "cpu_s_per_10k", reference="banyan")
            out.append((f"{what}: CPU per request within 15% of (b), round by round",
                        by_round[0] <= 1.15,
                        f"{rows[key]['cpu_s_per_10k']:.3f} vs {b['cpu_s_per_10k']:.3f} CPU s/10k req; "
                        f"round by round {by_round[0]:.2f}x ({by_round[1]:.2f}-{by_round[2]:.2f})"))
    if "banyan_fleet" in rows:
        fl = rows["banyan_fleet"]
        # Judged round by round against (b) beside it: the two differ by less than the
        # rounds of either spread.
        by_round = paired(rows, "banyan_fleet", "cpu_s_per_10k", reference="banyan")
        out.append(("(b2) fleet mode: CPU per request within 5% of (b), round by round",
                    by_round[0] <= 1.05,
                    f"{fl['cpu_s_per_10k']:.3f} vs {b['cpu_s_per_10k']:.3f} CPU s/10k req; "
                    f"round by round {by_round[0]:.2f}x ({by_round[1]:.2f}-{by_round[2]:.2f})"))
    return [{"target": t, "met": bool(ok), "figures": fig} for t, ok, fig in out]


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def markdown(meta, rate, rows, goals):
    n, d = rows["nginx"], rows["direct"]
    lines = [
        f"# banyan load test, {meta['date']}",
        "",
        f"{meta['cores']} cores ({meta['cpu']}), {meta['kernel']}; {meta['pinning']}. "
        f"{CONNECTIONS} keep-alive connections, {meta['body']} B JSON bodies; throughput "
        f"over {meta['seconds']} s closed loop; latency at a constant {rate} req/s for "
        f"{meta['latency_seconds']} s, from each request's due time; the median of "
        f"{meta['rounds']} round(s) taken in turn. banyan {meta['commit']}, "
        f"{meta['nginx']}.",
        "",
        "| scenario | req/s | x nginx | x direct | p50 ms | p99 ms | p99.9 ms | CPU s / 10k req | CPU x nginx | peak RSS MB | errors | steal % |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in (r for key, r in rows.items() if not key.startswith("grpc")):
        lines.append(
            "| {label} | {rps:.0f} | {xn} | {xd} | {p50} | {p99} | {p999} | {cpu} | {cxn} | {rss} | {err} | {steal} |".format(
                label=r["label"],
                rps=r["rps"],
                xn=fmt(ratio(r["rps"], n["rps"]), ".2f"),
                xd=fmt(ratio(r["rps"], d["rps"]), ".2f"),
                p50=fmt(r.get("p50_ms"), ".2f"),
                p99=fmt(r.get("p99_ms"), ".2f"),
                p999=fmt(r.get("p999_ms"), ".2f"),
                cpu=fmt(r["cpu_s_per_10k"], ".3f"),
                cxn=fmt(ratio(r["cpu_s_per_10k"], n["cpu_s_per_10k"]), ".2f"),
                rss=fmt(r["peak_rss_mb"], ".1f"),
                err=r["errors"],
                steal=fmt(r["steal_pct"], ".1f"),
            )
        )
    noisy = [r["label"] for r in rows.values() if max(x["steal_pct"] for x in r["rounds"]) > 5]
    if noisy:
        lines += ["", "The hypervisor stole over 5% of the CPU time in a round of: "
                  + "; ".join(noisy) + ". Their latency percentiles carry that noise."]
    grpc_rows = {k: r for k, r in rows.items() if k.startswith("grpc")}
    if "grpc_nginx" in grpc_rows:
        gn = grpc_rows["grpc_nginx"]
        lines += ["", "gRPC unary calls over h2c (8 connections of 8 calls in flight, a 1 KB answer "
                  "with its trailers), against nginx's grpc_pass:", "",
                  "| scenario | calls/s | x nginx grpc_pass | CPU s / 10k calls | CPU x nginx grpc_pass | peak RSS MB | errors | steal % |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in grpc_rows.values():
            lines.append(
                f"| {r['label']} | {r['rps']:.0f} | {fmt(ratio(r['rps'], gn['rps']), '.2f')} "
                f"| {fmt(r['cpu_s_per_10k'], '.3f')} | {fmt(ratio(r['cpu_s_per_10k'], gn['cpu_s_per_10k']), '.2f')} "
                f"| {fmt(r['peak_rss_mb'], '.1f')} | {r['errors']} | {fmt(r['steal_pct'], '.1f')} |"
            )
    if meta["rounds"] > 1:
        lines += ["", "Round by round against nginx's round beside it (the gRPC row: nginx grpc_pass's), median, lowest and highest:", "",
                  "| scenario | CPU per request x nginx | throughput x nginx |", "| --- | ---: | ---: |"]
        for key, r in rows.items():
            cpu, rps = paired(rows, key, "cpu_s_per_10k"), paired(rows, key, "rps")
            if key in ("grpc_banyan",):
                cpu, rps = (paired(rows, key, f, reference="grpc_nginx") for f in ("cpu_s_per_10k", "rps"))
            if key not in ("nginx", "direct", "grpc_nginx", "grpc_direct") and cpu and rps:
                lines.append(f"| {r['label']} | {cpu[0]:.2f} ({cpu[1]:.2f}-{cpu[2]:.2f}) "
                             f"| {rps[0]:.2f} ({rps[1]:.2f}-{rps[2]:.2f}) |")
    lines += ["", "| target | met | figures |", "| --- | --- | --- |"]
    for g in goals:
        lines.append(f"| {g['target']} | {'yes' if g['met'] else 'no'} | {g['figures']} |")
    lines += ["", "Reproduce: `make bench` (or `make bench-quick`); see loadtest/README.md.", ""]
    return "\n".join(lines)


def machine(args, cores):
    def out(cmd):
        # `nginx -v` answers on stderr, git on stdout.
        try:
            done = subprocess.run(cmd, capture_output=True, text=True)
        except OSError:
            return "unknown"
        return done.stdout.strip() or done.stderr.strip()

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": cores.count,
        "cpu": cpu,
        "kernel": f"Linux {platform.release()}",
        "pinning": cores.describe(),
        "body": args.body,
        "seconds": args.seconds,
        "latency_seconds": args.latency_seconds,
        "commit": out(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]),
        "nginx": out(["nginx", "-v"]).replace("nginx version: ", ""),
        "quick": args.quick,
        "rounds": args.rounds,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short phases (make bench-quick)")
    p.add_argument("--rate", type=int, help="constant rate for latency (default: 40%% of the slower of banyan and nginx)")
    p.add_argument("--body", type=int, default=1024, help="response body bytes (default 1024)")
    p.add_argument("--rounds", type=int, help="rounds of every scenario, in turn (default 3; 1 with --quick)")
    p.add_argument("--only", type=lambda v: set(v.split(",")),
                   help="scenario keys to run, comma-separated (direct, banyan and nginx always)")
    p.add_argument("--against", help="another banyan binary: its forward row (b3) beside this build's")
    p.add_argument("--out", default=RESULTS)
    args = p.parse_args()
    if args.only:
        args.only |= {"direct", "banyan", "nginx"} | ({"banyan_against"} if args.against else set())
    # (warm-up, closed-loop, constant-rate) seconds per round, and rounds.
    args.warmup, args.seconds, args.latency_seconds = (1, 4, 4) if args.quick else (1, 6, 8)
    args.rounds = args.rounds or (1 if args.quick else 3)

    bench = Bench(args)
    meta = machine(args, bench.cores)
    rate, rows = bench.run()
    goals = targets(rows)
    text = markdown(meta, rate, rows, goals)
    print(text)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "latest.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "latest.json"), "w") as f:
        json.dump({"machine": meta, "rate": rate, "connections": CONNECTIONS,
                   "scenarios": list(rows.values()), "targets": goals}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
