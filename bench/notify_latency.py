#!/usr/bin/env python3
"""Event-to-notification latency of Parapet's outbox (issue 6: p99 under 2 s).

Starts `parapet serve` (PARAPET_BIN) on a fresh SQLite directory with a webhook receiver in this
process, creates a tenant with a webhook channel, queues COUNT test messages at RATE per second
(each message's event time is when it is queued), and measures, per message, the time from its
event to the receiver getting the signed POST: server side (the outbox's delivered_at - event_at)
and client side (receipt here - the queuing call's return). The reference is the same receiver
reached by a direct POST from this script (the floor of one HTTP delivery on this machine).
Python standard library only.
"""
import http.server
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

COUNT = int(os.environ.get("COUNT", "500"))
RATE = float(os.environ.get("RATE", "50"))
BIN = os.environ.get("PARAPET_BIN", "target/release/parapet")
PW = "bench-password-0123456"

received = {}
lock = threading.Lock()


class Hook(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        now = time.time()
        try:
            key = json.loads(body).get("id") or json.loads(body).get("k")
        except ValueError:
            key = None
        with lock:
            received.setdefault(key, now)
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def call(base, method, path, token=None, body=None):
    req = urllib.request.Request(base + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    hook_port = srv.server_address[1]
    data = tempfile.mkdtemp(prefix="parapet-bench-notify-")
    conf = os.path.join(data, "parapet.toml")
    with open(conf, "w") as f:
        f.write("[notify]\npoll_ms = 50\nallow_private_webhooks = true\n")
    env = dict(os.environ, PARAPET_BOOTSTRAP_PASSWORD=PW, PARAPET_LOG="warn")
    p = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", data,
                          "--config", conf], stdout=subprocess.PIPE, text=True, env=env)
    base = None
    for line in p.stdout:
        m = re.search(r"listening on (\S+)", line)
        if m:
            base = m.group(1)
            break
    try:
        tok = call(base, "POST", "/api/v1/auth/login", body={"username": "admin", "password": PW})["token"]
        call(base, "POST", "/api/v1/tenants", tok, {"name": "bench"})
        call(base, "POST", "/api/v1/tenants/bench/notify/channels", tok,
             {"name": "hook", "kind": "webhook", "url": f"http://127.0.0.1:{hook_port}/h"})
        queued = {}
        start = time.time()
        for n in range(COUNT):
            m = call(base, "POST", "/api/v1/tenants/bench/notify/channels/hook/test", tok, {})
            queued[m["id"]] = time.time()
            delay = start + (n + 1) / RATE - time.time()
            if delay > 0:
                time.sleep(delay)
        deadline = time.time() + 60
        while time.time() < deadline:
            with lock:
                if all(k in received for k in queued):
                    break
            time.sleep(0.05)
        client = [(received[k] - t) * 1000 for k, t in queued.items() if k in received]
        server = []
        cursor = None
        while True:
            q = "/api/v1/tenants/bench/notify/outbox?status=delivered&limit=1000" + (f"&cursor={cursor}" if cursor else "")
            page = call(base, "GET", q, tok)
            server += [m["latency_ms"] for m in page["items"] if m["latency_ms"] is not None]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        # Reference: direct POSTs of the same size to the same receiver.
        direct = []
        for n in range(min(COUNT, 200)):
            t = time.time()
            req = urllib.request.Request(f"http://127.0.0.1:{hook_port}/h", method="POST",
                                         data=json.dumps({"k": f"direct-{n}", "pad": "x" * 300}).encode())
            urllib.request.urlopen(req, timeout=10).read()
            with lock:
                direct.append((received[f"direct-{n}"] - t) * 1000)
        print(f"messages: {COUNT} at {RATE}/s; delivered: {len(client)}; server-side latencies: {len(server)}")
        for name, xs in [("server (delivered_at - event_at)", server), ("client (receipt - queued)", client),
                         ("reference: direct POST", direct)]:
            if xs:
                print(f"{name}: p50 {statistics.median(xs):.1f} ms, p99 {pct(xs, 99):.1f} ms, max {max(xs):.1f} ms")
        if len(client) < COUNT:
            print(f"LOST: {COUNT - len(client)} messages not received")
            sys.exit(1)
    finally:
        p.terminate()
        p.wait()


if __name__ == "__main__":
    main()
