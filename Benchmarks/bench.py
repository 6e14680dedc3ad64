#!/usr/bin/env python3
"""Needle's benchmarks (see Benchmarks/README.md). The machine is noisy, so every number is the median
of several runs, and the interesting column is the ratio to the direct path, measured in the same run."""

import argparse, json, os, platform, re, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "Tests", "e2e"))
from netns import PodNetwork  # noqa: E402

POD = PodNetwork.POD_CLIENT_V4
APP_PORT, APP_H2_PORT, HAPROXY_PORT, NGINX_PROXY_PORT, ECHO_PORT = 8080, 8081, 8090, 8091, 5432
BODY = "x" * 512


# ---------------------------------------------------------------------------------------------- helpers

def proc_stat(pid):
    """(RSS in bytes, CPU seconds) of a process from /proc."""
    return proc_memory(pid)[0], proc_cpu(pid)


def proc_memory(pid):
    """(RSS, private anonymous RSS) in bytes. File-backed pages of the binary are shared by every pod on a
    node that runs the same image; the anonymous part is what each extra proxy really costs."""
    rss = anon = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1]) * 1024
    return rss, anon


def proc_cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


class Sampler:
    """Samples a process's RSS while a load runs."""

    def __init__(self, pid):
        self.pid, self.samples, self.anon = pid, [], []

    def sample(self):
        if self.pid:
            try:
                rss, anon = proc_memory(self.pid)
                self.samples.append(rss)
                self.anon.append(anon)
            except OSError:
                pass


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    k = (len(values) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def h2load(net, url, *, rate=None, connections=50, duration=10, warmup=3, h1=True, streams=1, data=None, headers=(), ns=None, sampler=None,
           uid=None, keep_log=False):
    """Runs h2load in the client namespace (or `ns`, as `uid`) with a per-request log; returns the measured numbers.
    h2load logs and counts only the requests of the measured interval (after the warm-up); with keep_log, the
    result also has "log": (start in s since the epoch, status, duration in ms) of each of them."""
    logs = net.scratch if net else tempfile.gettempdir()
    if uid is not None:  # another uid writes the log: a directory it may write to
        logs = os.path.join(logs, "h2load-logs")
        os.makedirs(logs, exist_ok=True)
        os.chmod(logs, 0o1777)
    log = os.path.join(logs, f"h2load-{time.time_ns()}.log")
    argv = ["h2load", "-c", str(connections), "-t", "1", "-D", str(duration), "--warm-up-time", str(warmup), "--log-file", log]
    if h1:
        argv.append("--h1")
    else:
        argv += ["-m", str(streams)]
    if rate:
        argv += ["--rps", f"{rate / connections:.3f}"]
    if data:
        argv += ["-d", data]
    for header in headers:
        argv += ["-H", header]
    argv.append(url)
    command = net.command(ns or net.client, argv, uid) if net else argv
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    while proc.poll() is None:
        if sampler:
            sampler.sample()
        time.sleep(0.2)
    output = proc.stdout.read()
    durations, statuses, starts = [], [], []
    if os.path.exists(log):
        with open(log) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    statuses.append(int(parts[1]))
                    durations.append(int(parts[2]) / 1000.0)  # ms
                    if keep_log:
                        starts.append(int(parts[0]) / 1e6)
        os.remove(log)
    ok = [d for d, s in zip(durations, statuses) if 200 <= s < 300]
    match = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout", output)
    done = int(match.group(2)) if match else len(durations)
    failed = (int(match.group(4)) + int(match.group(5)) + int(match.group(6))) if match else len(durations) - len(ok)
    result = {
        "rate": len(durations) / duration if durations else 0.0,
        "p50": percentile(ok, 50), "p99": percentile(ok, 99), "p999": percentile(ok, 99.9), "max": max(ok) if ok else float("nan"),
        "requests": done, "errors": failed, "raw": output,
    }
    if keep_log:
        result["log"] = list(zip(starts, statuses, durations))
    return result


def median_of(runs, key):
    values = [r[key] for r in runs if r.get(key) == r.get(key)]  # drop NaN
    return statistics.median(values) if values else float("nan")


def fmt(value, digits=2):
    if value is None or value != value:
        return "–"
    return f"{value:.{digits}f}"


# ---------------------------------------------------------------------------------------------- topology

class Lab:
    """A pod (namespaces) with nginx as the app, and the proxies under test."""

    def __init__(self, net, args):
        self.net, self.args = net, args
        self.proxy_binary = net.install(os.path.abspath(args.proxy))
        self.init_binary = net.install(os.path.abspath(args.init))
        self.proxy = None
        self.intercepting = False

    def write(self, name, text):
        path = os.path.join(self.net.scratch, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def start_app(self):
        conf = self.write("app.conf", f"""
daemon off; pid {self.net.scratch}/app.pid; error_log stderr error; worker_processes 1;
worker_rlimit_nofile 65536;
events {{ worker_connections 32768; }}
http {{
  access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  server {{ listen {APP_PORT} reuseport backlog=4096; location / {{ return 200 '{BODY}'; }} }}
  server {{ listen {APP_H2_PORT} http2; location / {{ return 200 '{BODY}'; }} }}
}}""")
        self.net.spawn(self.net.pod, ["nginx", "-c", conf, "-e", "stderr"])
        self.write("echo.py", ECHO_SERVER)
        self.net.spawn(self.net.pod, ["bash", "-c", f"ulimit -n $(ulimit -Hn); exec python3 {self.net.scratch}/echo.py {ECHO_PORT}"], ready_line="ready")
        self.wait_port(APP_PORT)

    def wait_port(self, port, ns=None):
        for _ in range(100):
            r = self.net.run(ns or self.net.client, ["bash", "-c", f"exec 3<>/dev/tcp/{POD}/{port}"])
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"nothing listens on {POD}:{port}")

    def intercept(self):
        """needle-init's rules, as in a meshed pod; HAProxy's and nginx's ports are exempt, so they keep their own
        listeners yet pay the same netfilter hooks (connection tracking on every packet) as needle-proxy."""
        if not self.intercepting:
            self.net.run(self.net.pod, [self.init_binary, "--proxy-uid", "2102", "--inbound-ports-to-ignore", f"4191,{HAPROXY_PORT},{NGINX_PROXY_PORT}"])
            self.intercepting = True

    def stop_intercepting(self):
        self.net.run(self.net.pod, [self.init_binary, "--cleanup"])
        self.intercepting = False

    def start_needle(self):
        self.intercept()
        env = ["env", "-i", "PATH=/usr/bin:/bin", f"NEEDLE_PROXY_INBOUND_IPS={POD},{PodNetwork.POD_EXTERNAL_V4}", "NEEDLE_PROXY_LOG=warning"]
        self.proxy = self.net.spawn(self.net.pod, ["bash", "-c", "ulimit -n $(ulimit -Hn); exec \"$@\"", "needle", *env, self.proxy_binary], uid=2102)
        waited = self.net.run(self.net.pod, ["env", "-i", self.proxy_binary, "await", "--timeout", "15s"], uid=2102)
        if waited.returncode != 0:
            raise RuntimeError("needle-proxy did not become ready: " + waited.stderr)
        return self.proxy.pid

    def stop_needle(self, keep_interception=False):
        if self.proxy and self.proxy.poll() is None:
            self.proxy.send_signal(signal.SIGTERM)
            try:
                self.proxy.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proxy.kill()
        if not keep_interception:
            self.stop_intercepting()

    def start_haproxy(self):
        conf = self.write("haproxy.cfg", f"""
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 1s
  timeout client 60s
  timeout server 60s
  option http-keep-alive
frontend bench
  bind {POD}:{HAPROXY_PORT}
  default_backend app
backend app
  http-reuse always
  server app 127.0.0.1:{APP_PORT}
""")
        proc = self.net.spawn(self.net.pod, ["haproxy", "-db", "-f", conf])
        self.wait_port(HAPROXY_PORT)
        return proc

    def start_nginx_proxy(self):
        conf = self.write("proxy.conf", f"""
daemon off; pid {self.net.scratch}/proxy.pid; error_log stderr error; worker_processes 1;
events {{ worker_connections 16384; }}
http {{
  access_log off; keepalive_requests 1000000;
  upstream app {{ server 127.0.0.1:{APP_PORT}; keepalive 64; }}
  server {{
    listen {POD}:{NGINX_PROXY_PORT};
    location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}""")
        proc = self.net.spawn(self.net.pod, ["nginx", "-c", conf, "-e", "stderr"])
        self.wait_port(NGINX_PROXY_PORT)
        return proc


ECHO_SERVER = """
import asyncio, sys
async def handle(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except Exception:
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", int(sys.argv[1]), backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""

HOLDER = """
import socket, sys, time
counts = [int(c) for c in sys.argv[3].split(",")]
socks = []
for target in counts:
    while len(socks) < target:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
        s.sendall(b"x")
        s.recv(1)
        socks.append(s)
    print(f"open {len(socks)}", flush=True)
    sys.stdin.readline()
"""


# ---------------------------------------------------------------------------------------------- benchmarks

def proxy_benchmark(lab, args, report):
    net = lab.net
    peers = [("direct", APP_PORT), ("needle-proxy", APP_PORT), ("HAProxy", HAPROXY_PORT), ("nginx", NGINX_PROXY_PORT)]
    if args.peers:
        wanted = set(args.peers.split(",")) | {"direct"}
        peers = [(name, port) for name, port in peers if name in wanted]
    fixed = {name: [] for name, _ in peers}
    unthrottled = {name: [] for name, _ in peers}
    resources = {name: [] for name, _ in peers}
    h2c = {"direct": [], "needle-proxy": []}
    haproxy = lab.start_haproxy()
    nginx_proxy = lab.start_nginx_proxy()
    pids = {"HAProxy": haproxy.pid, "nginx": None}
    nginx_workers = subprocess.run(["pgrep", "-P", str(nginx_proxy.pid)], capture_output=True, text=True).stdout.split()
    pids["nginx"] = int(nginx_workers[0]) if nginx_workers else nginx_proxy.pid
    def place(name):
        # The direct path is the unmeshed pod; every proxy runs with the pod's interception rules in place.
        if name == "direct":
            lab.stop_intercepting()
        else:
            lab.intercept()

    for run in range(args.runs):
        # The fixed-rate runs first, back to back: their CPU figures are compared, and the machine drifts less
        # between two measurements seconds apart than between two with the other runs in between.
        for name, port in peers:
            place(name)
            if name == "needle-proxy":
                pids[name] = lab.start_needle()
            pid = pids.get(name)
            sampler = Sampler(pid)
            before = proc_stat(pid) if pid else None
            result = h2load(net, f"http://{POD}:{port}/", rate=args.rate, connections=args.connections,
                            duration=args.duration, warmup=args.warmup, sampler=sampler)
            after = proc_stat(pid) if pid else None
            fixed[name].append(result)
            if pid:
                half = sampler.samples[len(sampler.samples) // 2:] or sampler.samples
                anon_half = sampler.anon[len(sampler.anon) // 2:] or sampler.anon
                resources[name].append({
                    "peak": max(sampler.samples) / 1048576 if sampler.samples else float("nan"),
                    "steady": statistics.median(half) / 1048576 if half else float("nan"),
                    "anon": statistics.median(anon_half) / 1048576 if anon_half else float("nan"),
                    # The CPU counters span the warm-up too, while h2load counts only the measured requests: at a
                    # fixed rate the warm-up carried warmup/duration as many again.
                    "cpu": (after[1] - before[1]) / max(result["requests"] * (args.warmup + args.duration) / args.duration, 1) * 10000,
                })
            cpu = f", CPU {resources[name][-1]['cpu']:.3f} s/10k" if pid else ""
            print(f"bench: run {run + 1}/{args.runs} {name}: {fixed[name][-1]['rate']:.0f} req/s, p99 {fixed[name][-1]['p99']:.2f} ms{cpu}", flush=True)
        for name, port in peers:
            place(name)
            unthrottled[name].append(h2load(net, f"http://{POD}:{port}/", connections=args.connections, duration=args.short, warmup=1))
            if name in h2c:
                h2c[name].append(h2load(net, f"http://{POD}:{APP_H2_PORT}/", rate=args.rate, connections=10, streams=10,
                                        duration=args.short, warmup=1, h1=False))
        if "needle-proxy" in pids:
            lab.stop_needle(keep_interception=True)
    lab.stop_intercepting()
    haproxy.terminate()
    nginx_proxy.terminate()

    direct = {k: median_of(fixed["direct"], k) for k in ("p50", "p99", "p999", "max")}
    lines = [
        f"### HTTP/1.1 at a fixed rate ({args.rate} requests/s over {args.connections} keep-alive connections, "
        f"{args.duration} s after {args.warmup} s warm-up; median of {args.runs} runs)", "",
        "| path | achieved req/s | p50 ms | p99 ms | p99.9 ms | max ms | added p50 ms | added p99 ms | errors | proxy RSS peak MiB | proxy RSS steady MiB | proxy private (anon) MiB | CPU s / 10k req |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, _ in peers:
        runs = fixed[name]
        row = {k: median_of(runs, k) for k in ("rate", "p50", "p99", "p999", "max")}
        res = resources[name]
        lines.append(f"| {name} | {fmt(row['rate'], 0)} | {fmt(row['p50'])} | {fmt(row['p99'])} | {fmt(row['p999'])} | {fmt(row['max'])} | "
                     f"{fmt(row['p50'] - direct['p50']) if name != 'direct' else '–'} | {fmt(row['p99'] - direct['p99']) if name != 'direct' else '–'} | "
                     f"{sum(r['errors'] for r in runs)} | {fmt(median_of(res, 'peak'), 1)} | {fmt(median_of(res, 'steady'), 1)} | "
                     f"{fmt(median_of(res, 'anon'), 1)} | {fmt(median_of(res, 'cpu'), 3)} |")
    if resources.get("needle-proxy") and resources.get("HAProxy"):
        # Each row's median may come from a different run, minutes apart on a shared machine; the two
        # measurements of one run are seconds apart, so their ratio drifts less.
        ratios = [n["cpu"] / h["cpu"] for n, h in zip(resources["needle-proxy"], resources["HAProxy"]) if h["cpu"] > 0]
        if ratios:
            lines += ["", "needle-proxy's CPU per request over HAProxy's, run by run (each pair measured back to back): "
                      + ", ".join(f"{r:.2f}" for r in ratios) + f" (median {statistics.median(ratios):.2f})."]
    lines += ["", f"### Unthrottled HTTP/1.1 ({args.connections} connections, {args.short} s, one worker; median)", "",
              "| path | req/s | ratio to direct | p50 ms | p99 ms |", "|---|---|---|---|---|"]
    top_direct = median_of(unthrottled["direct"], "rate")
    for name, _ in peers:
        rate = median_of(unthrottled[name], "rate")
        lines.append(f"| {name} | {fmt(rate, 0)} | {fmt(rate / top_direct if top_direct else float('nan'))} | "
                     f"{fmt(median_of(unthrottled[name], 'p50'))} | {fmt(median_of(unthrottled[name], 'p99'))} |")
    lines += ["", f"### h2c at a fixed rate ({args.rate} requests/s, 10 connections × 10 streams, {args.short} s; median)", "",
              "| path | achieved req/s | p50 ms | p99 ms | max ms | errors |", "|---|---|---|---|---|---|"]
    for name, runs in h2c.items():
        lines.append(f"| {name} | {fmt(median_of(runs, 'rate'), 0)} | {fmt(median_of(runs, 'p50'))} | {fmt(median_of(runs, 'p99'))} | "
                     f"{fmt(median_of(runs, 'max'))} | {sum(r['errors'] for r in runs)} |")
    report += lines + [""]


def connection_scale(lab, args, report):
    net = lab.net
    # Two descriptors per connection in the proxy (client and upstream side): stay under the hard limit.
    import resource
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    ceiling = max(100, (hard - 512) // 2) if hard != resource.RLIM_INFINITY else 10000
    counts = [c for c in ([1, 100, 1000, 10000] if not args.quick else [1, 10, 100]) if c <= ceiling]
    if counts[-1] < (10000 if not args.quick else 100):
        counts.append(ceiling)
    pid = lab.start_needle()
    base, base_anon = proc_memory(pid)
    holder = lab.write("holder.py", HOLDER)
    proc = subprocess.Popen(net.command(net.client, ["bash", "-c", f"ulimit -n $(ulimit -Hn); exec python3 {holder} {POD} {ECHO_PORT} "
                                                     + ",".join(map(str, counts))]),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    rows = []
    for count in counts:
        line = proc.stdout.readline().strip()
        if not line.startswith("open"):
            rows.append((count, float("nan"), float("nan")))
            break
        time.sleep(1.0)
        rss, anon = proc_memory(pid)
        rows.append((count, rss, anon))
        proc.stdin.write("\n")
        proc.stdin.flush()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
    lab.stop_needle()
    lines = ["### needle-proxy memory with idle connections open through it (opaque TCP, inbound)", "",
             "| connections | RSS MiB | private (anon) MiB | per connection KiB (vs idle proxy) |", "|---|---|---|---|",
             f"| 0 | {base / 1048576:.1f} | {base_anon / 1048576:.1f} | – |"]
    for count, rss, anon in rows:
        lines.append(f"| {count} | {fmt(rss / 1048576, 1)} | {fmt(anon / 1048576, 1)} | {fmt((rss - base) / count / 1024, 1)} |")
    if counts and counts[-1] < 10000 and not args.quick:
        lines += ["", f"10,000 connections were not tried: this machine's open-file limit ({hard}) allows about {ceiling} "
                  "connections through one proxy, which holds two descriptors per connection."]
    if len(rows) >= 2 and rows[-1][1] == rows[-1][1]:
        (c1, r1, _), (c2, r2, _) = rows[-2], rows[-1]
        lines += ["", f"Marginal cost between {c1} and {c2} connections: {(r2 - r1) / (c2 - c1) / 1024:.1f} KiB per connection "
                  "(client side and upstream side together)."]
    report += lines + [""]


def typical_container(i):
    """One app container as a Deployment's pod template usually has it: ports, env, probes, resources, mounts."""
    return {"name": f"app-{i}", "image": f"registry.example.com/shop/checkout-{i}:2.14.3", "imagePullPolicy": "IfNotPresent",
            "ports": [{"name": "http", "containerPort": 8080 + i, "protocol": "TCP"}, {"name": "metrics", "containerPort": 9100 + i}],
            "env": [{"name": name, "value": value} for name, value in (
                ("LOG_LEVEL", "info"), ("DB_HOST", "postgres.shop.svc.cluster.local"), ("DB_PORT", "5432"), ("CACHE_URL", "redis://redis:6379"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel-collector.observability:4317"), ("FEATURE_FLAGS", "new-cart,fast-checkout"))]
            + [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
               {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "checkout-db", "key": "password"}}}],
            "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080 + i}, "initialDelaySeconds": 10, "periodSeconds": 10},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080 + i}, "periodSeconds": 5},
            "volumeMounts": [{"name": "config", "mountPath": "/etc/checkout", "readOnly": True},
                             {"name": "kube-api-access-x7k2p", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": True}],
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                                "capabilities": {"drop": ["ALL"]}},
            "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}


def make_review(containers):
    """An AdmissionReview for a Deployment's pod as the API server sends it (about 4.7 KB with one container)."""
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"generateName": "checkout-7d9f8c6b5-", "namespace": "demo",
                        "labels": {"app.kubernetes.io/name": "checkout", "app.kubernetes.io/part-of": "shop", "app.kubernetes.io/version": "2.14.3",
                                   "pod-template-hash": "7d9f8c6b5", "team": "payments",
                                   "app.kubernetes.io/component": "api", "app.kubernetes.io/managed-by": "argocd", "environment": "production"},
                        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9100", "kubectl.kubernetes.io/restartedAt": "2026-11-20T10:00:00Z",
                                        "checksum/config": "9f2c4e6a8b0d1f3e5a7c9e1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f1a3c5e7b9d0f",
                                        "checksum/secret": "1b3d5f7a9c2e4b6d8f0a1c3e5b7d9f1a3c5e7b9d0f9f2c4e6a8b0d1f3e5a7c9e",
                                        "kubernetes.io/change-cause": "rollout checkout 2.14.3 (payments release train 48)"},
                        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-7d9f8c6b5",
                                             "uid": "3f1d2c4b-6a7e-4f80-9b1c-2d3e4f5a6b7c", "controller": True, "blockOwnerDeletion": True}]},
           "spec": {"serviceAccountName": "checkout", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst", "restartPolicy": "Always",
                    "schedulerName": "default-scheduler", "enableServiceLinks": True, "priority": 0, "preemptionPolicy": "PreemptLowerPriority",
                    "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [typical_container(i) for i in range(containers)],
                    "volumes": [{"name": "config", "configMap": {"name": "checkout-config", "defaultMode": 420}},
                                {"name": "kube-api-access-x7k2p", "projected": {"defaultMode": 420, "sources": [
                                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                                    {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                                    {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}],
                    "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                                    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
                    "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "checkout"}}, "topologyKey": "kubernetes.io/hostname"}}]}}}}
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "0c3f9c4e-7a61-4b8e-9d2f-5e6a7b8c9d0e", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                        "resource": {"group": "", "version": "v1", "resource": "pods"},
                        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
                        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
                        "namespace": "demo", "operation": "CREATE",
                        "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller",
                                     "uid": "9a8b7c6d-5e4f-3a2b-1c0d-e9f8a7b6c5d4",
                                     "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]},
                        "object": pod, "oldObject": None, "dryRun": False,
                        "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}}}


def webhook_benchmark(args, report, work):
    port, admin, ceiling_port = 18443, 19995, 18444
    dev = os.path.join(work, "dev")
    injector = subprocess.Popen([os.path.abspath(args.injector), "--dev", "--dev-directory", dev, "--listen", f"127.0.0.1:{port}",
                                 "--admin-listen", f"127.0.0.1:{admin}", "--log-level", "warning"], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    levels = [1, 4, 16, 64] if not args.quick else [1, 4]
    lines = [f"### needle-injector: AdmissionReviews over HTTPS keep-alive ({args.short} s per level; median of {args.runs})", "",
             "| pod | concurrency | needle-injector reviews/s | p50 ms | p99 ms | nginx static HTTPS req/s (ceiling) | ceiling p99 ms | ratio | injector RSS MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for containers in (1, 40):
        review = os.path.join(work, f"review-{containers}.json")
        with open(review, "w") as f:
            json.dump(make_review(containers), f)
        label = f"{containers} container{'s' if containers > 1 else ''} ({os.path.getsize(review) / 1024:.1f} KiB review)"
        response = subprocess.run(["curl", "-sk", "-H", "Content-Type: application/json", "--data-binary", f"@{review}",
                                   f"https://127.0.0.1:{port}/inject"], capture_output=True, text=True).stdout
        static = os.path.join(work, f"static-{containers}")
        os.makedirs(static, exist_ok=True)
        with open(os.path.join(static, "inject"), "w") as f:
            f.write(response)
        # nginx's worker runs as an unprivileged user: it must be able to reach the file, or the ceiling
        # measures 403 pages instead of the injector's response.
        for path in (work, static):
            os.chmod(path, 0o755)
        os.chmod(os.path.join(static, "inject"), 0o644)
        conf = os.path.join(work, f"ceiling-{containers}.conf")
        with open(conf, "w") as f:
            f.write(f"""daemon off; pid {work}/ceiling-{containers}.pid; error_log stderr error; worker_processes 1;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000; default_type application/json;
  server {{ listen 127.0.0.1:{ceiling_port} ssl; ssl_certificate {dev}/tls.crt; ssl_certificate_key {dev}/tls.key;
    client_body_buffer_size 1m; root {static};
    location = /inject {{ error_page 405 =200 $uri; }} }} }}""")
        ceiling = subprocess.Popen(["nginx", "-c", conf, "-e", "stderr"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        served = subprocess.run(["curl", "-sk", "-w", "\n%{http_code}", "-H", "Content-Type: application/json", "--data-binary",
                                 f"@{review}", f"https://127.0.0.1:{ceiling_port}/inject"], capture_output=True, text=True).stdout
        if served != response + "\n200":
            ceiling.terminate()
            raise RuntimeError(f"the ceiling does not serve the injector's response: {served[-200:]!r}")
        for level in levels:
            ours, theirs, rss = [], [], []
            for _ in range(args.runs):
                ours.append(h2load(None, f"https://127.0.0.1:{port}/inject", connections=level, duration=args.short, warmup=1,
                                   data=review, headers=["Content-Type: application/json"]))
                rss.append(proc_stat(injector.pid)[0] / 1048576)
                theirs.append(h2load(None, f"https://127.0.0.1:{ceiling_port}/inject", connections=level, duration=args.short, warmup=1,
                                     data=review, headers=["Content-Type: application/json"]))
            rate, ceiling_rate = median_of(ours, "rate"), median_of(theirs, "rate")
            lines.append(f"| {label} | {level} | {fmt(rate, 0)} | {fmt(median_of(ours, 'p50'))} | {fmt(median_of(ours, 'p99'))} | "
                         f"{fmt(ceiling_rate, 0)} | {fmt(median_of(theirs, 'p99'))} | {fmt(rate / ceiling_rate if ceiling_rate else float('nan'))} | "
                         f"{fmt(statistics.median(rss), 1)} |")
            print(f"bench: webhook {label} c={level}: {rate:.0f}/s vs ceiling {ceiling_rate:.0f}/s", flush=True)
        ceiling.terminate()
        ceiling.wait(timeout=10)
    injector.terminate()
    injector.wait(timeout=30)
    report += lines + [""]


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        memory = int(f.readline().split()[1]) / 1048576
    versions = {tool: subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0] if subprocess.run(cmd, capture_output=True, text=True).stdout else "?"
                for tool, cmd in (("h2load", ["h2load", "--version"]), ("haproxy", ["haproxy", "-v"]))}
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    return [f"- CPU: {cpu}, {os.cpu_count()} cores; memory {memory:.1f} GiB; kernel {platform.release()}",
            f"- load generator: {versions['h2load']}; peers: {versions['haproxy']}, {nginx}",
            "- all processes (generator, app, proxy) share the same cores; numbers are medians, compare rows within this report"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--proxy", help="needle-proxy (required unless --only-controller)")
    parser.add_argument("--init", help="needle-init (required unless --only-controller)")
    parser.add_argument("--injector", help="needle-injector (required unless --only-controller)")
    parser.add_argument("--controller", default=default_controller(),
                        help="needle-controller for the meshed and controller benchmarks (not on the data path: a debug build is fine); "
                             "default .build/release/needle-controller if present, else .build/debug/needle-controller")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=30)
    parser.add_argument("--short", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rate", type=int, default=4000)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 run, 2 s each")
    parser.add_argument("--only-proxy", action="store_true", help="only the fixed-rate proxy comparison (no connection scale, no mesh, no controller, no injector)")
    parser.add_argument("--only-injector", action="store_true", help="only needle-injector beside its HTTPS ceiling")
    parser.add_argument("--only-mesh", action="store_true", help="only the meshed benchmark (two proxies: plaintext and mTLS)")
    parser.add_argument("--only-controller", action="store_true",
                        help="only needle-controller's destination memory with many Services and pods (needs only --controller)")
    parser.add_argument("--controller-endpoints", default="",
                        help="two totals of ready endpoints for the controller benchmark (default 1000,4000; 100,400 with --quick)")
    parser.add_argument("--controller-per-service", type=int, default=10, help="ready endpoints per Service in the controller benchmark")
    parser.add_argument("--controller-lookups", type=int, default=0,
                        help="lookups held open at once in the controller benchmark (default 200; 20 with --quick)")
    parser.add_argument("--mesh-connections", type=int, default=0, help="idle connections for the meshed memory test (default 200; 50 with --quick)")
    parser.add_argument("--hold-ms", type=int, default=2000, help="how long the app holds each request of the meshed memory test")
    parser.add_argument("--peers", default="", help="comma-separated subset of needle-proxy,HAProxy,nginx (direct is always run)")
    parser.add_argument("--out", default=os.path.join(ROOT, "Benchmarks", "results", "latest.md"))
    args = parser.parse_args()
    if args.quick:
        args.runs, args.duration, args.short, args.warmup, args.rate = 1, 2, 2, 1, 500
    if args.mesh_connections == 1:
        parser.error("--mesh-connections: at least 2 (the growth is measured from 1 connection)")
    if sum((args.only_proxy, args.only_mesh, args.only_controller, args.only_injector)) > 1:
        parser.error("--only-proxy, --only-mesh, --only-controller and --only-injector exclude each other")
    if not args.only_controller:
        needed = ("injector",) if args.only_injector else ("proxy", "init", "injector")
        missing = [f"--{name}" for name in needed if not getattr(args, name)]
        if missing:
            parser.error(f"{', '.join(missing)} required (only --only-controller runs without them)")
    binaries = [args.controller] if args.only_controller else [b for b in (args.proxy, args.init, args.injector, args.controller) if b]
    report = [f"# Needle benchmarks — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", ""] + machine() + [
        f"- binaries: {', '.join(f'`{b}`' for b in binaries)}", ""]
    work = tempfile.mkdtemp(prefix="needle-bench-")
    try:
        if args.only_controller:
            controller_section(args, report)
        elif args.only_injector:
            injector_section(args, report, work)
        elif args.only_mesh:
            mesh_section(args, report)
        else:
            with PodNetwork("bench") as net:
                lab = Lab(net, args)
                lab.start_app()
                report.append("## needle-proxy beside the direct path, HAProxy and nginx\n")
                report.append("The app is nginx returning a 512-byte body in the pod namespace; the load comes from a client namespace over a "
                              "veth pair. needle-proxy runs transparently (needle-init's iptables REDIRECT, as in a real pod); HAProxy and "
                              "nginx run as plain reverse proxies on their own ports in the same namespace, keep-alive to the app. Every "
                              "proxy is measured with needle-init's rules installed (HAProxy's and nginx's ports exempt), so all pass the "
                              "same netfilter hooks (connection tracking on every packet); only the direct path runs without them.\n")
                for section in (proxy_benchmark,) if args.only_proxy else (proxy_benchmark, connection_scale):
                    try:
                        section(lab, args, report)
                    except Exception as error:  # keep the rest of the report
                        report.append(f"**{section.__name__} failed:** `{error!r}`\n")
                        lab.stop_needle()
            if not args.only_proxy:
                mesh_section(args, report)
                controller_section(args, report)
                injector_section(args, report, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(report) + "\n")
    print(f"bench: report written to {args.out}")


def default_controller():
    release = os.path.join(ROOT, ".build", "release", "needle-controller")
    return release if os.path.exists(release) else os.path.join(ROOT, ".build", "debug", "needle-controller")


def injector_section(args, report, work):
    report.append("## needle-injector beside an HTTPS ceiling\n")
    report.append("The ceiling is nginx (1 worker) serving the injector's own response bytes as a static file over HTTPS with the "
                  "same certificate: what a minimal HTTPS server does with no work per request.\n")
    try:
        webhook_benchmark(args, report, work)
    except Exception as error:
        report.append(f"**webhook_benchmark failed:** `{error!r}`\n")


def mesh_section(args, report):
    report.append("## Meshed: two proxies, plaintext and mutual TLS\n")
    report.append("Two pods routed through a node namespace, as the mesh end-to-end check builds them, with needle-controller, the "
                  "stand-in Kubernetes API (TokenReview, Service, EndpointSlice, pods) and a DNS stand-in on the node. The server pod "
                  "runs nginx (the 512-byte answer of the proxy comparison) behind needle-init and needle-proxy; the client pod runs needle-init and "
                  "needle-proxy, and h2load as an app uid, so its connections go out through the client proxy. Paths: **direct** "
                  "(h2load to the server pod's nginx on a port both pods' needle-init leave alone: no proxy), **plaintext through two "
                  "proxies** (to the server pod's IP, both proxies with identity off), **mTLS through two proxies** (to the Service's "
                  "ClusterIP: the client proxy asks the controller, which names the server pod as a meshed endpoint, and reaches it over "
                  "mutual TLS; the server proxy terminates it). The proxies restart for each path and run.\n")
    try:
        from mesh_bench import mesh_benchmark
        mesh_benchmark(args, report)
    except Exception as error:  # keep the rest of the report
        report.append(f"**mesh_benchmark failed:** `{error!r}`\n")


def controller_section(args, report):
    report.append("## needle-controller: destination memory with many Services and pods\n")
    report.append("needle-controller and the stand-in Kubernetes API (TokenReview; list and watch of Services, EndpointSlices and pods) "
                  "in one network namespace, on loopback. The API is loaded in bulk with Services, one EndpointSlice each with ready "
                  "endpoints (targetRefs to their pods) and those pods, half of them meshed (a needle-proxy container), at two sizes; "
                  "then lookups are held open over mutual TLS (a workload certificate signed by the issuer), over HTTP/1.1 and HTTP/2; "
                  "then everything is deleted, the watches renewed and a relist forced, and the cluster loaded and relisted again. "
                  "Memory is the controller's RSS and private (RssAnon) from /proc/PID/status, and its live heap from glibc's "
                  "malloc_stats() (through gdb, when there is one).\n")
    try:
        from controller_bench import controller_benchmark
        controller_benchmark(args, report)
    except Exception as error:  # keep the rest of the report
        report.append(f"**controller_benchmark failed:** `{error!r}`\n")


if __name__ == "__main__":
    main()
