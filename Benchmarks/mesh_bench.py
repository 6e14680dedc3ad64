#!/usr/bin/env python3
"""The meshed benchmark (Benchmarks/README.md, item 3): two pods routed through a node, as the mesh
end-to-end check lays them out (Tests/e2e/meshnet.py), with needle-controller, the stand-in Kubernetes API
and a DNS stand-in on the node. The server pod runs nginx (the same 512-byte answer as bench.py's app) behind
needle-init and needle-proxy; the client pod runs needle-init and needle-proxy, and h2load as an app uid, so
its connections go through the client's outbound proxy. Three paths at the same fixed rate:

  direct      h2load -> the server pod's nginx on a port both pods' needle-init leave alone (no proxy)
  plaintext   h2load -> server pod IP:8080 -> client proxy -> server proxy -> nginx, both proxies identity off
  mTLS        h2load -> the Service's ClusterIP:80 -> client proxy (discovery: the server pod, meshed) ->
              mutual TLS -> server proxy -> nginx, both proxies identity and discovery on

Then the memory each proxy adds per connection held open through it, plaintext and mTLS. Run from
bench.py (`mesh_benchmark`); not on its own."""

import json, os, signal, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
E2E = os.path.join(ROOT, "Tests", "e2e")
if E2E not in sys.path:
    sys.path.insert(0, E2E)
from bench import BODY, fmt, h2load, median_of, proc_cpu, proc_memory  # noqa: E402
from meshnet import MeshNetwork  # noqa: E402
from webhook_e2e import issue, make_ca  # noqa: E402
from identity_e2e import AUDIENCE, CONTROLLER_NAME, make_issuer, tls_name  # noqa: E402
from destination_checks import POD_PATH, SERVICE_PATH, SLICE_PATH  # noqa: E402
from mesh_e2e import DESTINATION_HOST, IDENTITY_HOST, MeshPod, StandInAPI, wait_for  # noqa: E402

NAMESPACE = "bench"
CLUSTER_IP = "10.96.0.10"
PROXY_UID, APP_UID = 2102, 1000
# nginx answers on APP_PORT (redirected to the proxies) and on DIRECT_PORT (left alone by both pods' needle-init);
# HOLD_PORT is an app that answers /hold/<ms> after that many milliseconds (the connection-memory test).
APP_PORT, DIRECT_PORT, HOLD_PORT = 8080, 8090, 8082
SERVICE_PORT, SERVICE_HOLD_PORT = 80, 82
# pod short name -> service account
ACCOUNTS = {"client": "client", "server": "server"}
CLIENT_NAME, SERVER_NAME = tls_name(NAMESPACE, "client"), tls_name(NAMESPACE, "server")
PATHS = (("direct", "direct"), ("plaintext", "plaintext through two proxies"), ("mtls", "mTLS through two proxies"))
PROXIES = ("client", "server")
# The connection holder runs as the app uid, which may not reach the interpreter running this (under /root): the
# system's Python if there is one (it needs only the standard library).
APP_PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable

HOLD_APP = """
import asyncio, sys
BODY = b"x" * 512
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\\r\\n\\r\\n")
            path = head.split(b" ", 2)[1].decode()
            if path.startswith("/hold/"):
                await asyncio.sleep(int(path.rsplit("/", 1)[1]) / 1000)
            writer.write(b"HTTP/1.1 200 OK\\r\\nContent-Type: text/plain\\r\\nContent-Length: 512\\r\\n\\r\\n" + BODY)
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

# Holds keep-alive connections open: for each count, opens connections up to it, then sends one request on
# EVERY open connection before reading any answer (the app holds each for the given time), so all are in
# flight at once and each proxy needs an upstream connection per client connection; prints "open N BAD SECONDS"
# and waits for a line on standard input. The first count's requests are answered at once.
HOLDER = """
import socket, sys, time
host, port, delay = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
counts = [int(c) for c in sys.argv[4].split(",")]
socks = []
def answer(s):
    data = b""
    while b"\\r\\n\\r\\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError("closed before an answer")
        data += chunk
    head, body = data.split(b"\\r\\n\\r\\n", 1)
    lines = head.split(b"\\r\\n")
    length = next(int(l.split(b":", 1)[1]) for l in lines[1:] if l.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError("closed within the body")
        body += chunk
    return int(lines[0].split()[1])
for index, target in enumerate(counts):
    try:
        while len(socks) < target:
            socks.append(socket.create_connection((host, port), timeout=120))
        started = time.time()
        request = f"GET /hold/{delay if index else 0} HTTP/1.1\\r\\nHost: bench\\r\\n\\r\\n".encode()
        for s in socks:
            s.sendall(request)
        bad = sum(1 for s in socks if answer(s) != 200)
        print(f"open {len(socks)} {bad} {time.time() - started:.2f}", flush=True)
    except Exception as error:
        print(f"fail {type(error).__name__} {error}", flush=True)
        break
    sys.stdin.readline()
"""


def sockets_of(pid):
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                count += 1
        except OSError:
            pass
    return count


class ProcessSampler:
    """Samples the CPU time and memory of several processes, with the time of each sample (h2load calls
    `sample` every 0.2 s while it runs)."""

    def __init__(self, pids):
        self.pids, self.samples = pids, []  # samples: (time, {name: (cpu s, rss, anon)})

    def sample(self):
        now, values = time.time(), {}
        for name, pid in self.pids.items():
            try:
                rss, anon = proc_memory(pid)
                values[name] = (proc_cpu(pid), rss, anon)
            except OSError:
                pass
        self.samples.append((now, values))

    def resources(self, name, log):
        """CPU seconds per 10k requests over the measured interval (the samples inside the span h2load
        logged requests for, divided by the requests started between the first and last of them), peak RSS
        over the whole run, steady RSS and private memory (medians over the second half of the interval)."""
        samples = [(t, v[name]) for t, v in self.samples if name in v]
        nan = float("nan")
        if not samples:
            return {"cpu": nan, "peak": nan, "steady": nan, "anon": nan}
        inside = []
        if log:
            start, end = min(s for s, _, _ in log), max(s + d / 1000 for s, _, d in log)
            inside = [(t, v) for t, v in samples if start <= t <= end]
        cpu = nan
        if len(inside) >= 2:
            (t0, v0), (t1, v1) = inside[0], inside[-1]
            requests = sum(1 for s, _, _ in log if t0 <= s <= t1)
            if requests:
                cpu = (v1[0] - v0[0]) / requests * 10000
        half = inside[len(inside) // 2:] or samples[len(samples) // 2:]
        return {"cpu": cpu, "peak": max(v[1] for _, v in samples) / 1048576,
                "steady": statistics.median(v[1] for _, v in half) / 1048576,
                "anon": statistics.median(v[2] for _, v in half) / 1048576}


class MeshLab:
    """The two pods, the node's control plane, and starting/stopping the two proxies in either mode."""

    def __init__(self, net, args):
        self.net, self.args = net, args
        self.proxy_binary = net.install(os.path.abspath(args.proxy))
        self.init_binary = net.install(os.path.abspath(args.init))
        self.controller_binary = net.install(os.path.abspath(args.controller))
        self.tools = {name: net.install(os.path.join(E2E, "tools", name))
                      for name in ("mesh_api.py", "token_review_api.py", "cluster_api.py", "dns_server.py")}
        self.pods = {short: MeshPod(net, short, self.proxy_binary, self.init_binary) for short in PROXIES}
        self.mode = None
        self.started = 0

    def path(self, name):
        return os.path.join(self.net.scratch, name)

    def write(self, name, text):
        with open(self.path(name), "w") as f:
            f.write(text)
        return self.path(name)

    def tail(self, name, lines=15):
        try:
            with open(self.path(name), errors="replace") as f:
                return " | ".join(f.read().splitlines()[-lines:])
        except OSError:
            return ""

    # ---- the node: certificates, stand-in API, DNS, controller

    def start_control_plane(self):
        net, work, node, py = self.net, self.net.scratch, self.net.node, sys.executable
        anchor_key, self.anchor = make_ca(work)
        issuer_crt, issuer_key = make_issuer(work, anchor_key, self.anchor, "issuer")
        api_crt, api_key = issue(work, anchor_key, self.anchor, "api")
        with open(os.path.join(work, "tokens.json"), "w") as f:
            json.dump({f"{short}-token": [f"system:serviceaccount:{NAMESPACE}:{account}", [AUDIENCE]]
                       for short, account in ACCOUNTS.items()}, f)
        self.write("controller-token", "controller-token\n")
        for short in PROXIES:
            os.chmod(self.write(f"{short}.token", f"{short}-token\n"), 0o644)
        api_proc = subprocess.Popen(net.command(node, [py, self.tools["mesh_api.py"], "--port", "6443", "--cert", api_crt,
                                                       "--key", api_key, "--controller-token", "controller-token",
                                                       "--tokens", os.path.join(work, "tokens.json")]),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.path("api.log"), "ab"))
        net.processes.append(api_proc)
        if api_proc.stdout.readline().decode().strip() != "ready":
            raise RuntimeError("the stand-in API did not start: " + self.tail("api.log"))
        api = StandInAPI(api_proc)
        api.put(SERVICE_PATH, {"metadata": {"name": "server", "namespace": NAMESPACE},
                               "spec": {"clusterIP": CLUSTER_IP, "ports": [
                                   {"name": "http", "port": SERVICE_PORT, "targetPort": APP_PORT, "protocol": "TCP"},
                                   {"name": "hold", "port": SERVICE_HOLD_PORT, "targetPort": HOLD_PORT, "protocol": "TCP"}]}})
        for short, account in ACCOUNTS.items():
            ports = [{"name": "http", "containerPort": APP_PORT}, {"name": "hold", "containerPort": HOLD_PORT},
                     {"name": "direct", "containerPort": DIRECT_PORT}] if short == "server" else []
            # Meshed: the pod has a needle-proxy container (DESIGN §8), so discovery names its identity.
            api.put(POD_PATH, {"metadata": {"name": short, "namespace": NAMESPACE},
                               "spec": {"serviceAccountName": account,
                                        "containers": [{"name": "app", "ports": ports}, {"name": "needle-proxy", "env": []}]},
                               "status": {"phase": "Running", "podIP": net.ip[short]}})
        api.put(SLICE_PATH, {"metadata": {"name": "server-abc", "namespace": NAMESPACE, "labels": {"kubernetes.io/service-name": "server"}},
                             "addressType": "IPv4",
                             "ports": [{"name": "http", "port": APP_PORT, "protocol": "TCP"}, {"name": "hold", "port": HOLD_PORT, "protocol": "TCP"}],
                             "endpoints": [{"addresses": [net.ip["server"]], "conditions": {"ready": True},
                                            "targetRef": {"kind": "Pod", "namespace": NAMESPACE, "name": "server"}}]})
        self.api = api
        net.spawn(node, [py, self.tools["dns_server.py"], "--host", net.NODE_IP, "--record", f"{IDENTITY_HOST}={net.NODE_IP}",
                         "--record", f"{DESTINATION_HOST}={net.NODE_IP}", "--log", self.path("dns-queries.log")], ready_line="ready")
        NODE = net.NODE_IP
        self.controller = net.spawn_logged(node, [
            self.controller_binary, "--identity-listen", f"{NODE}:8080", "--destination-listen", f"{NODE}:8086",
            "--admin-listen", "127.0.0.1:9996", "--trust-anchors", self.anchor, "--issuer-cert", issuer_crt, "--issuer-key", issuer_key,
            "--trust-domain", "cluster.local", "--kube-api-server", "https://127.0.0.1:6443", "--kube-ca-file", self.anchor,
            "--kube-token-file", self.path("controller-token"), "--log-level", "warning", "--shutdown-grace-period", "2"],
            self.path("controller.log"))
        ready = lambda: net.run(node, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2",
                                       "http://127.0.0.1:9996/ready"]).stdout == "200"
        if not wait_for(ready, 60):
            raise RuntimeError("needle-controller did not become ready: " + self.tail("controller.log"))

    # ---- the pods

    def start_pods(self):
        net = self.net
        conf = self.write("mesh-app.conf", f"""
daemon off; pid {net.scratch}/mesh-app.pid; error_log stderr error; worker_processes 1;
worker_rlimit_nofile 65536;
events {{ worker_connections 32768; }}
http {{
  access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  server {{ listen {APP_PORT} reuseport backlog=4096; listen {DIRECT_PORT} reuseport backlog=4096; location / {{ return 200 '{BODY}'; }} }}
}}""")
        net.spawn(net.ns["server"], ["nginx", "-c", conf, "-e", "stderr"])
        hold = self.write("hold-app.py", HOLD_APP)
        net.spawn(net.ns["server"], ["bash", "-c", f"ulimit -n $(ulimit -Hn); exec {sys.executable} {hold} {HOLD_PORT}"], ready_line="ready")
        self.holder = self.write("mesh-holder.py", HOLDER)
        # Checked from the node before needle-init redirects the ports to a proxy that is not running yet.
        for port in (APP_PORT, DIRECT_PORT, HOLD_PORT):
            if not wait_for(lambda: net.run(net.node, ["bash", "-c", f"exec 3<>/dev/tcp/{net.ip['server']}/{port}"]).returncode == 0, 10, 0.1):
                raise RuntimeError(f"nothing listens on the server pod's port {port}")
        for short in PROXIES:
            net.resolv_conf(short, net.NODE_IP)
            # The direct path's port is left alone on both sides: no redirection out of the client, none into the server.
            argv = [self.init_binary, "--proxy-uid", str(PROXY_UID), "--inbound-ports-to-ignore", f"4191,{DIRECT_PORT}",
                    "--outbound-ports-to-ignore", str(DIRECT_PORT)]
            applied = net.run(net.ns[short], argv)
            if applied.returncode != 0:
                raise RuntimeError(f"needle-init failed in the {short} pod: {applied.stderr}")

    def start_proxies(self, mode):
        """Starts both proxies, identity off ("plaintext") or identity and discovery on ("mtls"); returns their pids."""
        net = self.net
        with open(self.anchor) as f:
            anchors = f.read()
        self.started += 1
        for short, pod in self.pods.items():
            env = {"PATH": "/usr/bin:/bin", "NEEDLE_PROXY_INBOUND_IPS": net.ip[short], "NEEDLE_PROXY_LOG": "warning",
                   "NEEDLE_PROXY_SHUTDOWN_GRACE_PERIOD": "5s", "NEEDLE_POD_NAMESPACE": NAMESPACE, "NEEDLE_POD_NAME": short,
                   "NEEDLE_POD_SERVICE_ACCOUNT": ACCOUNTS[short]}
            if short == "server":
                env["NEEDLE_PROXY_INBOUND_PORTS"] = f"{APP_PORT},{HOLD_PORT}"
            if mode == "mtls":
                env.update({
                    "NEEDLE_PROXY_IDENTITY_SVC_ADDR": f"{IDENTITY_HOST}.:8080", "NEEDLE_PROXY_IDENTITY_SVC_NAME": CONTROLLER_NAME,
                    "NEEDLE_PROXY_IDENTITY_TRUST_ANCHORS": anchors, "NEEDLE_PROXY_IDENTITY_TOKEN_FILE": self.path(f"{short}.token"),
                    "NEEDLE_PROXY_IDENTITY_TRUST_DOMAIN": "cluster.local",
                    "NEEDLE_PROXY_DESTINATION_SVC_ADDR": f"{DESTINATION_HOST}.:8086", "NEEDLE_PROXY_DESTINATION_SVC_NAME": CONTROLLER_NAME})
            argv = ["bash", "-c", "ulimit -n $(ulimit -Hn); exec \"$@\"", "needle", "env", "-i",
                    *[f"{k}={v}" for k, v in env.items()], self.proxy_binary]
            pod.log = f"proxy-{short}-{mode}-{self.started}.log"
            pod.proxy = net.spawn_logged(net.ns[short], argv, self.path(pod.log), uid=PROXY_UID)
        for short, pod in self.pods.items():
            waited = net.run(net.ns[short], ["env", "-i", self.proxy_binary, "await", "--timeout", "30s"], uid=PROXY_UID, timeout=40)
            if waited.returncode != 0:
                raise RuntimeError(f"the {short} proxy ({mode}) did not become ready: {waited.stderr.strip()} {self.tail(pod.log)}")
        self.mode = mode
        return {short: pod.proxy.pid for short, pod in self.pods.items()}

    def stop_proxies(self):
        for pod in self.pods.values():
            if pod.proxy is not None and pod.proxy.poll() is None:
                pod.proxy.send_signal(signal.SIGTERM)
        for pod in self.pods.values():
            if pod.proxy is None:
                continue
            try:
                pod.proxy.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pod.proxy.kill()
                pod.proxy.wait(timeout=5)
            pod.proxy = None
        self.mode = None

    def check_running(self):
        for short, pod in self.pods.items():
            if pod.proxy is not None and pod.proxy.poll() is not None:
                raise RuntimeError(f"the {short} proxy exited ({pod.proxy.returncode}): {self.tail(pod.log)}")

    def counts(self):
        """The request counters that tell how requests went: per proxy, mTLS (with the peer's identity) and all."""
        client, server = self.pods["client"], self.pods["server"]
        ctext, stext = client.metrics(), server.metrics()
        return {
            "client_mtls": client.metric(ctext, "request_total", direction="outbound", tls="true", server_id=SERVER_NAME),
            # Plaintext: tls="false" with identity off, tls="no_identity" (with a reason) with it on.
            "client_plain": sum(client.metric(ctext, "request_total", direction="outbound", tls=t) for t in ("false", "no_identity")),
            "client_all": client.metric(ctext, "request_total", direction="outbound"),
            "server_mtls": server.metric(stext, "request_total", direction="inbound", tls="true", client_id=CLIENT_NAME),
            "server_plain": sum(server.metric(stext, "request_total", direction="inbound", tls=t) for t in ("false", "no_identity")),
            "server_all": server.metric(stext, "request_total", direction="inbound"),
        }

    def target(self, path, port_kind="app"):
        if path == "direct":
            return self.net.ip["server"], DIRECT_PORT
        if path == "mtls":
            return CLUSTER_IP, SERVICE_PORT if port_kind == "app" else SERVICE_HOLD_PORT
        return self.net.ip["server"], APP_PORT if port_kind == "app" else HOLD_PORT


# ---------------------------------------------------------------------------------------------- measurements

def fixed_rate(lab, args, path):
    """One h2load run at the fixed rate on `path`, with the proxies (if any) already running."""
    pids = {short: pod.proxy.pid for short, pod in lab.pods.items() if pod.proxy is not None} if path != "direct" else {}
    sampler = ProcessSampler(pids)
    before = lab.counts() if pids else None
    host, port = lab.target(path)
    result = h2load(lab.net, f"http://{host}:{port}/", rate=args.rate, connections=args.connections, duration=args.duration,
                    warmup=args.warmup, sampler=sampler, ns=lab.net.ns["client"], uid=APP_UID, keep_log=True)
    log = result.pop("log")
    result["proxies"] = {short: sampler.resources(short, log) for short in pids}
    if pids:
        lab.check_running()
        after = lab.counts()
        result["counts"] = {key: after[key] - before[key] for key in after}
    return result


def connection_memory(lab, args, path, count):
    """Each proxy's memory with 1 and with `count` keep-alive connections held open through the path (every one
    with a request answered while all were in flight, so each has its upstream connection too)."""
    net = lab.net
    pids = lab.start_proxies(path)
    host, port = lab.target(path, "hold")
    proc = subprocess.Popen(net.command(net.ns["client"], ["bash", "-c", f"ulimit -n $(ulimit -Hn); exec {APP_PYTHON} {lab.holder} "
                                                           f"{host} {port} {args.hold_ms} 1,{count}"], uid=APP_UID),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    levels = []
    try:
        for _ in (1, count):
            line = proc.stdout.readline().strip()
            parts = line.split()
            if not parts or parts[0] != "open":
                raise RuntimeError(f"the connection holder said {line!r} ({path})")
            time.sleep(1.0)
            levels.append({"connections": int(parts[1]), "bad": int(parts[2]), "seconds": float(parts[3]),
                           **{short: (*proc_memory(pid), sockets_of(pid)) for short, pid in pids.items()}})
            proc.stdin.write("\n")
            proc.stdin.flush()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)
        lab.check_running()
        lab.stop_proxies()
    one, many = levels
    added = many["connections"] - one["connections"]
    row = {"connections": many["connections"], "bad": one["bad"] + many["bad"], "seconds": many["seconds"]}
    for short in PROXIES:
        (rss1, anon1, socks1), (rssn, anonn, socksn) = one[short], many[short]
        row[short] = {"rss": (rssn - rss1) / added / 1024, "anon": (anonn - anon1) / added / 1024,
                      "sockets": (socksn - socks1) / added, "anon_total": anonn / 1048576}
    return row


def mesh_benchmark(args, report):
    count = args.mesh_connections if args.mesh_connections else (50 if args.quick else 200)
    started = time.time()
    runs = {name: [] for name, _ in PATHS}
    with MeshNetwork(["client", "server"], tag="bench") as net:
        lab = MeshLab(net, args)
        try:
            lab.start_control_plane()
            lab.start_pods()
            for run in range(args.runs):
                for name, label in PATHS:
                    if name != "direct":
                        lab.start_proxies(name)
                    try:
                        runs[name].append(fixed_rate(lab, args, name))
                    finally:
                        lab.stop_proxies()
                    last = runs[name][-1]
                    print(f"bench: mesh run {run + 1}/{args.runs} {label}: {last['rate']:.0f} req/s, p99 {last['p99']:.2f} ms, "
                          f"errors {last['errors']}", flush=True)
            memory = {}
            for name in ("plaintext", "mtls"):
                try:
                    memory[name] = connection_memory(lab, args, name, count)
                except Exception as error:  # the fixed-rate rows still make the report
                    lab.stop_proxies()
                    memory[name] = {"error": repr(error)}
                print(f"bench: mesh connection memory {name}: {memory[name]}", flush=True)
        except Exception:
            lab.stop_proxies()
            for name in ("controller.log",) + tuple(f"proxy-{s}-{m}-{lab.started}.log" for s in PROXIES for m in ("plaintext", "mtls")):
                tail = lab.tail(name, 5)
                if tail:
                    print(f"bench: {name}: {tail}", flush=True)
            raise
    report += mesh_report(args, runs, memory, count, time.time() - started)


def mesh_report(args, runs, memory, count, seconds):
    direct = {k: median_of(runs["direct"], k) for k in ("p50", "p99")}
    lines = [
        f"### HTTP/1.1 through two proxies at a fixed rate ({args.rate} requests/s over {args.connections} keep-alive connections, "
        f"{args.duration} s after {args.warmup} s warm-up; median of {args.runs} runs)", "",
        "| path | achieved req/s | p50 ms | p99 ms | p99.9 ms | max ms | added p50 ms | added p99 ms | errors |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, label in PATHS:
        rows = runs[name]
        row = {k: median_of(rows, k) for k in ("rate", "p50", "p99", "p999", "max")}
        added = name != "direct"
        lines.append(f"| {label} | {fmt(row['rate'], 0)} | {fmt(row['p50'])} | {fmt(row['p99'])} | {fmt(row['p999'])} | {fmt(row['max'])} | "
                     f"{fmt(row['p50'] - direct['p50']) if added else '–'} | {fmt(row['p99'] - direct['p99']) if added else '–'} | "
                     f"{sum(r['errors'] for r in rows)} |")
    lines += ["", "Each proxy during those runs (CPU over the measured interval only, user + system, per 10,000 requests; RSS "
              "sampled every 0.2 s: peak over the run, steady and private (anon) as medians over the second half of the interval):", "",
              "| path | proxy | CPU s / 10k req | RSS peak MiB | RSS steady MiB | private (anon) MiB |", "|---|---|---|---|---|---|"]
    for name, label in PATHS[1:]:
        both = []
        for short in PROXIES:
            res = [r["proxies"][short] for r in runs[name] if short in r.get("proxies", {})]
            both.append(median_of(res, "cpu"))
            lines.append(f"| {label} | {short} | {fmt(median_of(res, 'cpu'), 3)} | {fmt(median_of(res, 'peak'), 1)} | "
                         f"{fmt(median_of(res, 'steady'), 1)} | {fmt(median_of(res, 'anon'), 1)} |")
        lines.append(f"| {label} | both | {fmt(sum(both), 3)} | | | |")
    lines += ["", "How the requests went, from the proxies' own counters (`request_total`, warm-up included; summed over the runs): "
              "the client proxy's outbound requests over mutual TLS to the server's identity (`tls=\"true\"`, `server_id`) and in "
              "plaintext (`tls=\"false\"` with identity off, `tls=\"no_identity\"` with it on), and the server proxy's inbound requests "
              "over mutual TLS from the client's identity (`client_id`) and in plaintext; beside them, the requests h2load logged "
              "after its warm-up.", "",
              "| path | h2load requests (measured) | client outbound mTLS | client outbound plaintext | client outbound all | "
              "server inbound mTLS | server inbound plaintext | server inbound all | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    for name, label in PATHS[1:]:
        total = {key: sum(r["counts"][key] for r in runs[name] if "counts" in r)
                 for key in ("client_mtls", "client_plain", "client_all", "server_mtls", "server_plain", "server_all")}
        measured = sum(r["requests"] for r in runs[name])
        if name == "mtls":
            ok = total["client_all"] >= measured > 0 and total["client_mtls"] == total["client_all"] == total["server_mtls"]
            verdict = "all over mTLS" if ok else "**NOT all over mTLS**"
        else:
            ok = (total["client_all"] >= measured > 0 and total["client_plain"] == total["client_all"] == total["server_plain"]
                  and total["server_mtls"] == 0)
            verdict = "all plaintext" if ok else "**unexpected**"
        lines.append(f"| {label} | {measured} | {total['client_mtls']:.0f} | {total['client_plain']:.0f} | {total['client_all']:.0f} | "
                     f"{total['server_mtls']:.0f} | {total['server_plain']:.0f} | {total['server_all']:.0f} | {verdict} |")
    lines += ["", f"### Memory per connection through two proxies ({count} idle keep-alive connections vs 1)", "",
              f"Each connection has had one request answered while all {count} were in flight (the app held each "
              f"{args.hold_ms} ms), so each proxy holds a client-side and an upstream connection for it (2 sockets per connection "
              "is what to expect below); on the mTLS path the client proxy's upstream side and the server proxy's client side are "
              "mutual TLS. Growth from 1 to "
              f"{count} open connections, divided by {count - 1}; memory read 1 s after the last answer.", "",
              "| path | proxy | private (anon) KiB / connection | RSS KiB / connection | sockets / connection | private (anon) MiB at "
              f"{count} | failed requests |", "|---|---|---|---|---|---|---|"]
    for name, label in PATHS[1:]:
        row = memory.get(name)
        if not row:
            continue
        if "error" in row:
            lines.append(f"| {label} | – | failed: `{row['error']}` | | | | |")
            continue
        for short in PROXIES:
            r = row[short]
            lines.append(f"| {label} | {short} | {fmt(r['anon'], 1)} | {fmt(r['rss'], 1)} | {fmt(r['sockets'], 2)} | "
                         f"{fmt(r['anon_total'], 1)} | {row['bad']} |")
    if all(name in memory and "error" not in memory[name] for name in ("plaintext", "mtls")):
        extra = [memory["mtls"][s]["anon"] - memory["plaintext"][s]["anon"] for s in PROXIES]
        lines += ["", f"Mutual TLS adds {fmt(extra[0], 1)} KiB (client proxy) and {fmt(extra[1], 1)} KiB (server proxy) of private "
                  "memory per connection over the plaintext two-proxy path."]
    lines += ["", f"(The meshed section took {seconds:.0f} s.)"]
    return lines + [""]
