#!/usr/bin/env python3
"""banyan's memory with many idle keep-alive connections, and after they close.

Starts a small upstream and target/release/banyan on 127.0.0.1, opens N connections that
each send one request and then stay open, idle, reads banyan's RSS (VmRSS) before, with
all N open, and after they close, and writes the figures to
results/idle-connections.{md,json}. Memory, not time: the figures do not move with the
machine's neighbours.

    python3 loadtest/idle_connections.py [--connections 10000]
"""

import argparse
import http.server
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BANYAN = os.path.join(ROOT, "target", "release", "banyan")


class Upstream(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    body = json.dumps({"items": list(range(100))}).encode()

    def setup(self):
        super().setup()
        # Head and body go in two writes: without this, Nagle and delayed ACKs hold
        # every answer 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def start_banyan(upstream_port, max_connections):
    config = f"""default = "legacy"
[upstreams.legacy]
endpoints = ["http://127.0.0.1:{upstream_port}"]
[server]
listen = "127.0.0.1:0"
max_connections = {max_connections}
idle_timeout = "10m"
header_timeout = "10m"
[admin]
listen = "127.0.0.1:0"
"""
    directory = tempfile.mkdtemp()
    path = os.path.join(directory, "banyan.toml")
    with open(path, "w") as f:
        f.write(config)
    proc = subprocess.Popen(
        [BANYAN, "run", "-c", path, "--threads", "2"],
        stderr=subprocess.PIPE,
        text=True,
    )
    proxy = admin = None
    deadline = time.time() + 30
    while (proxy is None or admin is None) and time.time() < deadline:
        line = proc.stderr.readline()
        for marker in ("proxy listening addr=", "admin listening addr="):
            if marker in line:
                host, port = line.split(marker)[1].strip().rsplit(":", 1)
                if marker.startswith("proxy"):
                    proxy = (host, int(port))
                else:
                    admin = (host, int(port))
    if proxy is None or admin is None:
        proc.kill()
        sys.exit("banyan did not report its listener")
    # Keep reading stderr so banyan never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    return proc, proxy, admin


def open_connections(admin):
    """banyan_connections_open, from the admin listener."""
    s = socket.create_connection(admin)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("banyan_connections_open "):
            return int(float(line.split()[1]))
    return None


def open_idle(proxy, n, batch=1):
    """n connections, each after one request and its whole answer, left open. One at a
    time by default, so banyan's pool to the upstream stays at one connection and the
    figure is the client connections' own."""
    conns = []
    request = b"GET /idle HTTP/1.1\r\nHost: bench\r\n\r\n"
    for start in range(0, n, batch):
        group = []
        for _ in range(min(batch, n - start)):
            s = socket.create_connection(proxy)
            s.sendall(request)
            group.append(s)
        for s in group:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(65536)
                if not chunk:
                    raise SystemExit("banyan closed a connection it should keep")
                head += chunk
            headers, _, rest = head.partition(b"\r\n\r\n")
            length = 0
            for line in headers.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            while len(rest) < length:
                rest += s.recv(65536)
        conns.extend(group)
    return conns


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=10000)
    args = parser.parse_args()
    n = args.connections
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, n * 2 + 1000)
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    if want < n + 500:
        sys.exit(f"the file descriptor limit ({hard}) is too low for {n} connections")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    proc, proxy, admin = start_banyan(server.server_address[1], n + 1000)
    try:
        time.sleep(0.5)
        # Warm up: the pools, the runtime's threads, one request's allocations.
        for s in open_idle(proxy, 100):
            s.close()
        time.sleep(1)
        before = rss_kib(proc.pid)
        conns = open_idle(proxy, n)
        time.sleep(2)
        open_rss = rss_kib(proc.pid)
        open_count = open_connections(admin)
        for s in conns:
            s.close()
        time.sleep(3)
        after = rss_kib(proc.pid)
        time.sleep(7)
        after_10s = rss_kib(proc.pid)
        time.sleep(20)
        after_30s = rss_kib(proc.pid)
        closed_count = open_connections(admin)
    finally:
        proc.kill()
        proc.wait()
        server.shutdown()

    figures = {
        "connections": n,
        "banyan_connections_open_while_open": open_count,
        "banyan_connections_open_after_close": closed_count,
        "rss_before_kib": before,
        "rss_open_kib": open_rss,
        "rss_after_close_3s_kib": after,
        "rss_after_close_10s_kib": after_10s,
        "rss_after_close_30s_kib": after_30s,
        "per_connection_bytes": round((open_rss - before) * 1024 / n),
        "kept_after_close_kib": after_30s - before,
    }
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "idle-connections.json"), "w") as f:
        json.dump(figures, f, indent=2)
    table = f"""| measure | RSS |
| --- | ---: |
| before (after a warm-up of 100 connections) | {before / 1024:.1f} MiB |
| {n:,} idle keep-alive connections open | {open_rss / 1024:.1f} MiB |
| per idle connection | {figures['per_connection_bytes']:,} bytes |
| 3 s after they closed | {after / 1024:.1f} MiB |
| 10 s after they closed | {after_10s / 1024:.1f} MiB |
| 30 s after they closed | {after_30s / 1024:.1f} MiB |

banyan_connections_open: {open_count} while open, {closed_count} after they closed.
"""
    with open(os.path.join(HERE, "results", "idle-connections.md"), "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    main()
