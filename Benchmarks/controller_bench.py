#!/usr/bin/env python3
"""needle-controller's destination service with many Services and pods (Benchmarks/README.md, item 4): how
its memory grows with the cluster it watches and with the lookups it holds open, and whether it comes back
when the objects go.

One network namespace (meshnet.MeshNetwork with no pods: its node namespace alone, on loopback) runs the
stand-in Kubernetes API (Tests/e2e/tools/mesh_api.py: TokenReview + list/watch of Services, EndpointSlices
and pods), needle-controller, and a lookup client (this file, run as `controller_bench.py client ...`) that
asks the destination API over mutual TLS with a workload certificate signed by the issuer
(destination_checks.workload_certificate and its Stream over HTTP/1.1; the `h2` package over HTTP/2).
Steps:

  1. the controller ready with an empty cluster (but for the sentinel, below);
  2. S Services with E ready endpoints each (one EndpointSlice per Service, each endpoint with a targetRef to
     its pod) and their S x E pods, half of them meshed (a needle-proxy container), loaded in one bulk put per
     size (the stand-in's put_many); the controller has taken them in when a sentinel Service, EndpointSlice
     and pod, changed after the load, are answered together (each kind arrives on its own watch, in order);
  3. with the larger cluster loaded, L lookups of L different ClusterIPs held open at once, over HTTP/1.1 (a
     connection each) and over HTTP/2 (streams of one connection): time to the first answers, the memory they
     add; one lookup at a time and a no-op update of every EndpointSlice, with and without the L open;
  4. everything deleted in one bulk delete; the watches ended by the stand-in (the controller resumes them);
     a relist forced (the stand-in compacts its log, the watches get 410 Gone); the larger cluster loaded
     again, and relisted.

Memory is RSS and RssAnon from /proc/PID/status (medians of a few samples) and, with gdb, the live heap
(glibc's malloc_stats() called in the controller). Run from bench.py (`controller_benchmark`); not on its
own (the `client` mode is its helper)."""

import json, os, shutil, statistics, subprocess, sys, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
E2E = os.path.join(ROOT, "Tests", "e2e")
for path in (HERE, E2E):
    if path not in sys.path:
        sys.path.insert(0, path)
from bench import fmt, percentile, proc_cpu, proc_memory  # noqa: E402
from destination_checks import POD_PATH, SERVICE_PATH, SLICE_PATH, Stream, workload_certificate  # noqa: E402

NAMESPACES = 8          # Services are spread over team-00 .. team-07
SERVICE_PORTS = (("http", 80, 8080), ("grpc", 9090, 9090))
DESTINATION_PORT, IDENTITY_PORT, ADMIN_PORT, API_PORT = 8086, 8080, 9996, 6443
TRUST_DOMAIN = "cluster.local"
SENTINEL_NS, SENTINEL_IP, SENTINEL_POD_IP = "bench-sentinel", "10.95.0.1", "10.95.1.1"
SAMPLES, SAMPLE_INTERVAL = 5, 0.4


def sockets_of(pid):
    """Open sockets of a process (its file descriptors that are sockets)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


# ---------------------------------------------------------------------------------------------- the cluster

def namespace_of(i):
    return f"team-{i % NAMESPACES:02d}"


def service_name(i):
    return f"svc-{i:04d}"


def cluster_ip(i):
    return f"10.96.{i // 250}.{i % 250 + 1}"


def pod_ip(j):
    return f"10.244.{j // 250}.{j % 250 + 1}"


def pod_name(i, k):
    # As a Deployment names them: the Service's name, a ReplicaSet hash, a random suffix.
    return f"{service_name(i)}-7d9f8b6c5-{k:05d}"


def meshed(k):
    return k % 2 == 0


def service_object(i):
    name, ns, ip = service_name(i), namespace_of(i), cluster_ip(i)
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "uid": f"5e6f{i:08d}-0000-4000-8000-000000000000",
                         "labels": {"app": name, "team": ns}, "annotations": {"owner": f"{ns}@example.com"}},
            "spec": {"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip], "ipFamilies": ["IPv4"], "selector": {"app": name},
                     "sessionAffinity": "None",
                     "ports": [{"name": n, "port": p, "targetPort": t, "protocol": "TCP"} for n, p, t in SERVICE_PORTS]}}


def slice_object(i, per):
    name, ns = service_name(i), namespace_of(i)
    endpoints = [{"addresses": [pod_ip(i * per + k)], "conditions": {"ready": True, "serving": True, "terminating": False},
                  "nodeName": f"node-{(i * per + k) % 16:02d}", "zone": "zone-a",
                  "targetRef": {"kind": "Pod", "namespace": ns, "name": pod_name(i, k), "uid": f"9a8b{i * per + k:08d}-0000-4000-8000-000000000000"}}
                 for k in range(per)]
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{name}-x7k2p", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
            "addressType": "IPv4", "ports": [{"name": n, "port": t, "protocol": "TCP"} for n, _, t in SERVICE_PORTS],
            "endpoints": endpoints}


def pod_object(i, k, per):
    name, ns, ip = pod_name(i, k), namespace_of(i), pod_ip(i * per + k)
    app = {"name": "app", "image": f"registry.example.com/{ns}/{service_name(i)}:1.4.2",
           "ports": [{"name": n, "containerPort": t, "protocol": "TCP"} for n, _, t in SERVICE_PORTS],
           "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "GOMAXPROCS", "value": "2"}],
           "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
           "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}}}
    containers, init = [app], []
    if meshed(k):  # what needle-injector adds, in short
        containers.append({"name": "needle-proxy", "image": "ghcr.io/needle/proxy:0.3.0", "env": [
            {"name": "NEEDLE_PROXY_INBOUND_PORTS", "value": "8080,9090"},
            {"name": "NEEDLE_PROXY_OPAQUE_PORTS", "value": "25,587,3306,4444,5432,6379,9300,11211"},
            {"name": "NEEDLE_PROXY_IDENTITY_SVC_ADDR", "value": "needle-identity.needle.svc.cluster.local.:8080"},
            {"name": "NEEDLE_PROXY_DESTINATION_SVC_ADDR", "value": "needle-destination.needle.svc.cluster.local.:8086"}],
            "securityContext": {"runAsUser": 2102, "readOnlyRootFilesystem": True}})
        init.append({"name": "needle-init", "image": "ghcr.io/needle/init:0.3.0", "args": ["--proxy-uid", "2102"],
                     "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}}})
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "uid": f"9a8b{i * per + k:08d}-0000-4000-8000-000000000000",
                         "labels": {"app": service_name(i), "pod-template-hash": "7d9f8b6c5"},
                         "annotations": {"needle.dev/inject": "enabled"} if meshed(k) else {},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": f"{service_name(i)}-7d9f8b6c5"}]},
            "spec": {"serviceAccountName": service_name(i), "nodeName": f"node-{(i * per + k) % 16:02d}",
                     "containers": containers, "initContainers": init,
                     "volumes": [{"name": "kube-api-access", "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}]},
            "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "192.168.0.10",
                       "conditions": [{"type": t, "status": "True"} for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")]}}


def sentinel_objects(generation):
    """A Service, its EndpointSlice and its pod that change together: the lookup of SENTINEL_IP:(1000 + N) is
    answered with the pod at port 20000 + N and service account sentinel-N only once all three watches have
    delivered generation N, and so (each watch delivering its kind in order) everything put before it."""
    account = f"sentinel-{generation}"
    return [(SERVICE_PATH, {"metadata": {"name": "sentinel", "namespace": SENTINEL_NS},
                            "spec": {"clusterIP": SENTINEL_IP, "ports": [{"name": "s", "port": 1000 + generation, "protocol": "TCP"}]}}),
            (POD_PATH, {"metadata": {"name": "sentinel", "namespace": SENTINEL_NS},
                        "spec": {"serviceAccountName": account, "containers": [{"name": "app"}, {"name": "needle-proxy"}]},
                        "status": {"phase": "Running", "podIP": SENTINEL_POD_IP}}),
            (SLICE_PATH, {"metadata": {"name": "sentinel", "namespace": SENTINEL_NS, "labels": {"kubernetes.io/service-name": "sentinel"}},
                          "addressType": "IPv4", "ports": [{"name": "s", "port": 20000 + generation, "protocol": "TCP"}],
                          "endpoints": [{"addresses": [SENTINEL_POD_IP], "conditions": {"ready": True},
                                         "targetRef": {"kind": "Pod", "name": "sentinel"}}]})]


def sentinel_answered(lines, generation):
    identity = f"identity=sentinel-{generation}.{SENTINEL_NS}.serviceaccount.identity.needle.{TRUST_DOMAIN}"
    adds = [line for line in lines if line.startswith("add ")]
    return len(adds) == 1 and adds[0].startswith(f"add {SENTINEL_POD_IP}:{20000 + generation} ") and identity in adds[0].split()


def cluster_objects(first, last, per):
    """Services first..last-1 with their pods and EndpointSlices, as (path, object) in put order."""
    items = [(SERVICE_PATH, service_object(i)) for i in range(first, last)]
    items += [(POD_PATH, pod_object(i, k, per)) for i in range(first, last) for k in range(per)]
    items += [(SLICE_PATH, slice_object(i, per)) for i in range(first, last)]
    return items


def cluster_keys(count, per):
    """(path, namespace, name) of everything cluster_objects(0, count, per) put."""
    keys = [(SLICE_PATH, namespace_of(i), f"{service_name(i)}-x7k2p") for i in range(count)]
    keys += [(SERVICE_PATH, namespace_of(i), service_name(i)) for i in range(count)]
    keys += [(POD_PATH, namespace_of(i), pod_name(i, k)) for i in range(count) for k in range(per)]
    return keys


# ---------------------------------------------------------------------------------------------- the lab

class ControllerLab:
    def __init__(self, net, args):
        self.net, self.args = net, args
        self.binary = net.install(os.path.abspath(args.controller))
        self.tools = {name: net.install(os.path.join(E2E, "tools", name)) for name in ("mesh_api.py", "token_review_api.py", "cluster_api.py")}
        self.generation = 0
        self.controller = self.api = self.client = None
        self.gdb = shutil.which("gdb") is not None

    def path(self, name):
        return os.path.join(self.net.scratch, name)

    def tail(self, name, lines=10):
        try:
            with open(self.path(name), errors="replace") as f:
                return " | ".join(f.read().splitlines()[-lines:])
        except OSError:
            return ""

    def start(self):
        from webhook_e2e import issue, make_ca
        from identity_e2e import make_issuer
        from mesh_e2e import wait_for
        net, work, node, py = self.net, self.net.scratch, self.net.node, sys.executable
        anchor_key, anchor = make_ca(work)
        issuer_crt, issuer_key = make_issuer(work, anchor_key, anchor, "issuer")
        api_crt, api_key = issue(work, anchor_key, anchor, "api")
        chain, key = workload_certificate(work, issuer_crt, issuer_key)
        with open(self.path("tokens.json"), "w") as f:
            json.dump({}, f)
        with open(self.path("controller-token"), "w") as f:
            f.write("controller-token\n")
        self.api = subprocess.Popen(net.command(node, [py, self.tools["mesh_api.py"], "--port", str(API_PORT), "--cert", api_crt, "--key", api_key,
                                                       "--controller-token", "controller-token", "--tokens", self.path("tokens.json")]),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.path("api.log"), "ab"))
        net.processes.append(self.api)
        if self.api.stdout.readline().decode().strip() != "ready":
            raise RuntimeError("the stand-in API did not start: " + self.tail("api.log"))
        self.sentinel()
        self.controller = net.spawn_logged(node, [
            self.binary, "--identity-listen", f"127.0.0.1:{IDENTITY_PORT}", "--destination-listen", f"127.0.0.1:{DESTINATION_PORT}",
            "--admin-listen", f"127.0.0.1:{ADMIN_PORT}", "--trust-anchors", anchor, "--issuer-cert", issuer_crt, "--issuer-key", issuer_key,
            "--trust-domain", TRUST_DOMAIN, "--kube-api-server", f"https://127.0.0.1:{API_PORT}", "--kube-ca-file", anchor,
            "--kube-token-file", self.path("controller-token"), "--log-level", "notice", "--shutdown-grace-period", "2"],
            self.path("controller.log"))
        self.client = subprocess.Popen(net.command(node, [py, os.path.abspath(__file__), "client", "--port", str(DESTINATION_PORT),
                                                          "--anchor", anchor, "--chain", chain, "--key", key]),
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(self.path("client.log"), "ab"), text=True)
        net.processes.append(self.client)
        ready = lambda: net.run(node, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2",
                                       f"http://127.0.0.1:{ADMIN_PORT}/ready"]).stdout == "200"
        if not wait_for(ready, 60):
            raise RuntimeError("needle-controller did not become ready: " + self.tail("controller.log"))
        # Ready to serve is not yet listed: wait until the sentinel (put before the controller started) is answered.
        self.wait_sentinel(60)

    # ---- the stand-in API

    def command(self, obj):
        self.api.stdin.write((json.dumps(obj, separators=(",", ":")) + "\n").encode())
        self.api.stdin.flush()
        line = self.api.stdout.readline().decode().strip()
        if not line.startswith("done"):
            raise RuntimeError(f"the stand-in API said {line!r}: {self.tail('api.log')}")

    def put_many(self, items):
        self.command({"put_many": [[path, obj] for path, obj in items]})

    def delete_many(self, keys):
        self.command({"delete_many": [list(key) for key in keys]})

    def sentinel(self):
        """Moves the sentinel to the next generation; returns it."""
        self.generation += 1
        self.put_many(sentinel_objects(self.generation))
        return self.generation

    # ---- the lookup client

    def ask_client(self, command, timeout):
        self.client.stdin.write(json.dumps(command) + "\n")
        self.client.stdin.flush()
        result = {}
        done = threading.Event()

        def read():
            result["line"] = self.client.stdout.readline()
            done.set()
        threading.Thread(target=read, daemon=True).start()
        if not done.wait(timeout):
            raise RuntimeError(f"the lookup client did not answer {list(command)} within {timeout} s: {self.tail('client.log')}")
        if not result["line"]:
            raise RuntimeError(f"the lookup client exited: {self.tail('client.log')}")
        return json.loads(result["line"])

    def ask(self, address, timeout=10):
        """One fresh lookup: the lines of its first batch (up to the first sync)."""
        answer = self.ask_client({"ask": address, "timeout": timeout}, timeout + 15)
        if "error" in answer:
            raise RuntimeError(f"lookup of {address}: {answer['error']}")
        return answer["lines"]

    def wait_sentinel(self, seconds):
        """Waits until the sentinel's current generation is answered; returns the seconds it took."""
        started, generation = time.time(), self.generation
        address = f"{SENTINEL_IP}:{1000 + generation}"
        while True:
            try:
                if sentinel_answered(self.ask(address), generation):
                    return time.time() - started
            except RuntimeError:
                if time.time() - started > seconds:
                    raise
            if time.time() - started > seconds:
                raise RuntimeError(f"the controller did not take in generation {generation} within {seconds} s: {self.tail('controller.log')}")
            self.check_running()
            time.sleep(0.2)

    def check_running(self):
        if self.controller.poll() is not None:
            raise RuntimeError(f"needle-controller exited ({self.controller.returncode}): {self.tail('controller.log')}")

    # ---- measuring

    def memory(self, samples=SAMPLES):
        """Median RSS and RssAnon of the controller over a few samples, in bytes."""
        rss, anon = [], []
        for n in range(samples):
            if n:
                time.sleep(SAMPLE_INTERVAL)
            r, a = proc_memory(self.controller.pid)
            rss.append(r)
            anon.append(a)
        return statistics.median(rss), statistics.median(anon)

    def live_heap(self):
        """The bytes glibc malloc has handed out and not had back ("in use", mmapped blocks included), from
        malloc_stats() called in the controller through gdb; None without gdb or when it fails. The pages
        malloc keeps after free() count in RssAnon, not here: the difference is what the allocator holds
        for reuse. Called after the RSS samples (gdb stops the process for a moment)."""
        if not self.gdb:
            return None
        log = self.path("controller.log")
        mark = os.path.getsize(log)
        try:
            subprocess.run(["gdb", "--readnever", "-nx", "-batch", "-p", str(self.controller.pid), "-ex", "call (void) malloc_stats()"],
                           capture_output=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return None
        for _ in range(20):
            with open(log, errors="replace") as f:
                f.seek(mark)
                text = f.read()
            total = text.split("Total (incl. mmap):", 1)
            if len(total) == 2 and "in use bytes" in total[1]:
                for line in total[1].splitlines():
                    if line.startswith("in use bytes"):
                        return int(line.split("=")[1])
            time.sleep(0.1)
        self.gdb = False  # not glibc, or no symbols: do not try again
        return None

    def measure(self):
        rss, anon = self.memory()
        return {"rss": rss, "anon": anon, "heap": self.live_heap()}


class PeakSampler:
    """Samples a process's RSS every 0.1 s in a thread, for the peak while something runs."""

    def __init__(self, pid):
        self.pid, self.peak, self.peak_anon = pid, 0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            try:
                rss, anon = proc_memory(self.pid)
                self.peak, self.peak_anon = max(self.peak, rss), max(self.peak_anon, anon)
            except OSError:
                return
            self.stop.wait(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(timeout=2)
        return False


# ---------------------------------------------------------------------------------------------- the steps

def load(lab, first, last, per, timeout):
    """Puts Services first..last-1 with their pods and slices and waits until the controller has them; returns
    the row's numbers."""
    items = cluster_objects(first, last, per)
    cpu_before = proc_cpu(lab.controller.pid)
    with PeakSampler(lab.controller.pid) as peak:
        started = time.time()
        lab.put_many(items)
        put_seconds = time.time() - started
        lab.sentinel()
        lab.wait_sentinel(timeout)
        ingest_seconds = time.time() - started
    cpu = proc_cpu(lab.controller.pid) - cpu_before
    # The last Service's answer, to show the load is what the controller answers with.
    lines = lab.ask(f"{cluster_ip(last - 1)}:80")
    adds = [line for line in lines if line.startswith("add ")]
    want_meshed = sum(1 for k in range(per) if meshed(k))
    correct = len(adds) == per and sum(1 for line in adds if " identity=" in line) == want_meshed
    time.sleep(1.0)
    return {"objects": len(items), "put": put_seconds, "ingest": ingest_seconds, "cpu": cpu, "peak": peak.peak,
            "correct": correct, "answer": adds[:2], **lab.measure()}


def delete_all(lab, services, per, timeout):
    """Deletes everything but the sentinel in one bulk delete and waits until the controller has taken it in."""
    keys = cluster_keys(services, per)
    cpu_before = proc_cpu(lab.controller.pid)
    with PeakSampler(lab.controller.pid) as peak:
        started = time.time()
        lab.delete_many(keys)
        lab.sentinel()
        lab.wait_sentinel(timeout)
        seconds = time.time() - started
    return {"objects": f"{len(keys)} deleted", "ingest": seconds, "cpu": proc_cpu(lab.controller.pid) - cpu_before, "peak": peak.peak,
            "gone": lab.ask(f"{cluster_ip(services - 1)}:80") == ["reset", "not-known", "sync"]}


def renew_watches(lab, timeout, relist=False):
    """Ends the controller's watches (as the API server does at their timeout) and waits until it watches again,
    from where it was; with relist, compacts the stand-in's log first (as etcd compaction does), so each watch
    gets 410 Gone and the controller lists everything again. The peak RSS and CPU over it."""
    cpu_before = proc_cpu(lab.controller.pid)
    with PeakSampler(lab.controller.pid) as peak:
        started = time.time()
        lab.command({"compact": True} if relist else {"end_watches": True})
        lab.sentinel()
        lab.wait_sentinel(timeout)
        seconds = time.time() - started
    return {"ingest": seconds, "cpu": proc_cpu(lab.controller.pid) - cpu_before, "peak": peak.peak}


def single_lookups(lab, addresses):
    """One lookup at a time: the median seconds to the first answer, and from the response head to it."""
    total, after_head = [], []
    for address in addresses:
        answer = lab.ask_client({"ask": address, "timeout": 10}, 25)
        if "error" in answer:
            raise RuntimeError(f"lookup of {address}: {answer['error']}")
        total.append(answer["seconds"])
        after_head.append(answer["seconds"] - answer["head"])
    return statistics.median(total), statistics.median(after_head)


def churn(lab, services, per, timeout):
    """Puts every EndpointSlice again, unchanged (a no-op update each, as a resync or a status heartbeat
    would be): the controller's CPU and the time until it has taken them in."""
    pid = lab.controller.pid
    cpu_before, started = proc_cpu(pid), time.time()
    lab.put_many([(SLICE_PATH, slice_object(i, per)) for i in range(services)])
    lab.sentinel()
    lab.wait_sentinel(timeout)
    return proc_cpu(pid) - cpu_before, time.time() - started


def lookups(lab, count, per, services, timeout):
    """Opens `count` lookups of `count` different ClusterIPs at once and keeps them open; memory with them
    open, and after they are closed; one more lookup at a time, and a no-op update of every EndpointSlice,
    with none and with `count` open."""
    pid = lab.controller.pid
    addresses = [f"{cluster_ip(i * services // count)}:80" for i in range(count)]
    probes = [f"{cluster_ip(i)}:9090" for i in range(10)]  # other addresses than the held ones
    alone = single_lookups(lab, probes)
    churn_alone = churn(lab, services, per, timeout)
    time.sleep(1.0)
    before, sockets_before = lab.measure(), sockets_of(pid)
    cpu_before = proc_cpu(pid)
    with PeakSampler(pid) as peak:
        answer = lab.ask_client({"open": addresses, "timeout": 60}, 180)
    cpu = proc_cpu(pid) - cpu_before
    lab.check_running()
    time.sleep(1.0)
    opened, sockets_open = lab.measure(), sockets_of(pid)
    beside = single_lookups(lab, probes)
    churn_beside = churn(lab, services, per, timeout)
    results = answer.get("results", [])
    good = [r for r in results if "error" not in r and r.get("endpoints") == per]
    closed = lab.ask_client({"close": True}, 60)
    time.sleep(2.0)
    after, sockets_after = lab.measure(), sockets_of(pid)
    return {"count": count, "before": before, "open": opened, "after": after, "peak": peak.peak, "ok": len(good),
            "errors": [r.get("error", f"{r.get('endpoints')} endpoints") for r in results if r not in good][:3],
            "first": [r["seconds"] for r in good], "head": [r["head"] for r in good], "cpu": cpu, "closed": closed.get("closed"),
            "alone": alone, "beside": beside, "sockets": (sockets_before, sockets_open, sockets_after),
            "churn": (churn_alone, churn_beside), "slices": services}


def lookups_h2(lab, count, per, services):
    """`count` lookups as streams of one HTTP/2 connection (as a proxy keeps its lookups), as many as the
    controller's concurrent-stream limit lets open; memory with them open and after the connection closed."""
    pid = lab.controller.pid
    addresses = [f"{cluster_ip(i * services // count)}:80" for i in range(count)]
    try:
        import h2  # noqa: F401  (the lookup client needs it too)
    except ImportError:
        return {"error": "the Python package h2 is not installed"}
    time.sleep(1.0)
    before, sockets_before = lab.measure(), sockets_of(pid)
    cpu_before = proc_cpu(pid)
    answer = lab.ask_client({"open_h2": addresses, "timeout": 60}, 120)
    cpu = proc_cpu(pid) - cpu_before
    if "error" in answer:
        lab.ask_client({"close": True}, 60)
        return {"error": answer["error"]}
    lab.check_running()
    time.sleep(1.0)
    opened, sockets_open = lab.measure(), sockets_of(pid)
    results = answer["results"]
    good = [r for r in results if "error" not in r and r.get("endpoints") == per]
    lab.ask_client({"close": True}, 60)
    time.sleep(2.0)
    after, sockets_after = lab.measure(), sockets_of(pid)
    return {"count": len(results), "asked": count, "limit": answer["limit"], "connect": answer["connect"], "before": before, "open": opened,
            "after": after, "ok": len(good), "errors": [r.get("error", f"{r.get('endpoints')} endpoints") for r in results if r not in good][:3],
            "first": [r["seconds"] for r in good], "cpu": cpu, "sockets": (sockets_before, sockets_open, sockets_after)}


def controller_benchmark(args, report):
    from meshnet import MeshNetwork
    quick = args.quick
    sizes = [int(s) for s in (args.controller_endpoints or ("100,400" if quick else "1000,4000")).split(",")]
    per = args.controller_per_service
    count = args.controller_lookups or (20 if quick else 200)
    settle = 3 if quick else 10
    timeout = 120 if quick else 600
    if len(sizes) != 2 or not 0 < sizes[0] < sizes[1] or per < 1 or any(s % per for s in sizes):
        raise ValueError(f"--controller-endpoints: two growing totals, each a multiple of --controller-per-service ({per})")
    services = [s // per for s in sizes]
    count = min(count, services[1])
    started = time.time()
    rows, notes = [], []

    def show(row):
        heap = f", live heap {row['heap'] / 1048576:.1f} MiB" if row.get("heap") is not None else ""
        taken = f", taken in after {row['ingest']:.1f} s, CPU {row['cpu']:.1f} s" if "cpu" in row else ""
        print(f"bench: controller {row['phase']}: RSS {row['rss'] / 1048576:.1f} MiB, anon {row['anon'] / 1048576:.1f} MiB{heap}{taken}",
              flush=True)

    with MeshNetwork([], tag="ctl") as net:
        lab = ControllerLab(net, args)
        try:
            lab.start()
            time.sleep(1.0)
            rows.append({"phase": "ready, empty cluster", "services": 0, "endpoints": 0, **lab.measure()})
            show(rows[-1])
            first = 0
            for size, target in zip(sizes, services):
                row = load(lab, first, target, per, timeout)
                row.update(phase=f"{target} Services, {size} endpoints", services=target, endpoints=size)
                if not row["correct"]:
                    notes.append(f"After loading {size} endpoints the last Service was answered with {row['answer']!r}…, not "
                                 f"{per} endpoints of which the meshed half with their identity.")
                rows.append(row)
                show(row)
                first = target
            look = lookups(lab, count, per, services[1], timeout)
            print(f"bench: controller {count} lookups: {look['ok']} answered, first answer p50 {percentile(look['first'], 50) * 1000:.0f} ms, "
                  f"RSS {look['before']['rss'] / 1048576:.1f} -> {look['open']['rss'] / 1048576:.1f} -> {look['after']['rss'] / 1048576:.1f} MiB",
                  flush=True)
            look["h2"] = lookups_h2(lab, count, per, services[1])
            h2 = look["h2"]
            print(f"bench: controller {count} lookups over one HTTP/2 connection: " + (h2["error"] if "error" in h2 else
                  f"{h2['count']} opened (limit {h2['limit']}), {h2['ok']} answered, RSS {h2['before']['rss'] / 1048576:.1f} -> "
                  f"{h2['open']['rss'] / 1048576:.1f} -> {h2['after']['rss'] / 1048576:.1f} MiB"), flush=True)
            row = delete_all(lab, services[1], per, timeout)
            if not row.pop("gone"):
                notes.append("After the bulk delete the last Service's ClusterIP was still answered.")
            time.sleep(settle)
            row.update(phase=f"all deleted, {settle} s later", services=0, endpoints=0, **lab.measure())
            rows.append(row)
            show(row)
            row = renew_watches(lab, timeout)
            time.sleep(3.0)
            row.update(phase="all deleted, watches renewed (resumed), 3 s later", services=0, endpoints=0, **lab.measure())
            rows.append(row)
            show(row)
            row = renew_watches(lab, timeout, relist=True)
            time.sleep(3.0)
            row.update(phase="all deleted, relisted (410 Gone), 3 s later", services=0, endpoints=0, **lab.measure())
            rows.append(row)
            show(row)
            row = load(lab, 0, services[1], per, timeout)
            row.update(phase=f"{services[1]} Services, {sizes[1]} endpoints again", services=services[1], endpoints=sizes[1])
            rows.append(row)
            show(row)
            row = renew_watches(lab, timeout, relist=True)
            time.sleep(3.0)
            row.update(phase=f"{services[1]} Services, {sizes[1]} endpoints, relisted (410 Gone), 3 s later", services=services[1],
                       endpoints=sizes[1], objects=f"{len(cluster_keys(services[1], per))} listed", **lab.measure())
            rows.append(row)
            show(row)
            lab.check_running()
            with open(lab.path("controller.log"), errors="replace") as f:
                complaints = [line.strip() for line in f if " warning " in line or " error " in line or " critical " in line]
            if complaints:
                notes.append(f"needle-controller logged {len(complaints)} warnings or errors during the run; the first: `{complaints[0][:300]}`")
        except Exception:
            if lab.controller is not None:
                print(f"bench: controller.log: {lab.tail('controller.log', 5)}", flush=True)
            print(f"bench: api.log: {lab.tail('api.log', 5)} client.log: {lab.tail('client.log', 5)}", flush=True)
            raise
    report += controller_report(args, rows, look, per, count, notes, time.time() - started)


def controller_report(args, rows, look, per, count, notes, seconds):
    mib = lambda value: fmt(value / 1048576, 1) if value is not None else "–"
    measured = rows + [look[k] for k in ("before", "open", "after")] + [look["h2"][k] for k in ("before", "open", "after") if k in look.get("h2", {})]
    heap = all(m.get("heap") is not None for m in measured)  # gdb answered every time
    lines = [f"### needle-controller's destination state ({per} ready endpoints per Service, one EndpointSlice each, half the pods meshed)", "",
             "RSS and private (RssAnon) memory are medians of 5 samples 0.4 s apart, taken 1 s after the controller has answered a "
             "sentinel Service, EndpointSlice and pod put after the load (so every watch has delivered everything before it; the "
             "sentinel is there from the start, the empty cluster included). \"taken in\" is from the bulk put or delete (the stand-in "
             "decoding and storing the objects included) to that answer; CPU is the controller's over the same span, and peak RSS "
             "is sampled every 0.1 s over it. "
             + ("Live heap is what glibc malloc has handed out and not had back (`malloc_stats()` called in the controller through "
                "gdb, after the samples): RssAnon above it is memory the allocator keeps after `free` for reuse. " if heap else "")
             + "\"watches renewed\": the stand-in ends the controller's three watches, as the API server does at their timeout "
             "(the controller asks for 300 s), and the controller watches again from where it was. \"relisted\": the stand-in "
             "forgets its change log, as etcd compaction does, so each watch is answered 410 Gone and the controller lists "
             "everything again (in pages of 500) and replaces its records; \"taken in\" then includes its 1 s backoff.", "",
             "| phase | Services | endpoints (= pods) | objects | taken in s | controller CPU s | peak RSS MiB | RSS MiB | private (anon) MiB |"
             + (" live heap MiB |" if heap else ""),
             "|---|---|---|---|---|---|---|---|---|" + ("---|" if heap else "")]
    for row in rows:
        lines.append(f"| {row['phase']} | {row['services']} | {row['endpoints']} | {row.get('objects', '–')} | {fmt(row.get('ingest'), 1)} | "
                     f"{fmt(row.get('cpu'), 1)} | {mib(row.get('peak'))} | {mib(row['rss'])} | {mib(row['anon'])} |"
                     + (f" {mib(row['heap'])} |" if heap else ""))
    empty, small, big, deleted, renewed, relisted, again, big_relisted = rows
    added = big["endpoints"] - small["endpoints"]
    per_kib = lambda key: fmt((big[key] - small[key]) / added / 1024, 2) if big.get(key) is not None and small.get(key) is not None else "–"
    lines += ["", f"Per endpoint, between {small['endpoints']} and {big['endpoints']} endpoints (each endpoint here is one pod, and "
              f"1/{per} of a Service and its EndpointSlice): **{per_kib('anon')} KiB private (anon)**, {per_kib('rss')} KiB RSS"
              + (f", {per_kib('heap')} KiB live heap." if heap else ".")]
    kept = lambda row, key: fmt(100 * (row[key] - empty[key]) / max(big[key] - empty[key], 1), 0)
    text = (f"After deleting everything, private memory is {mib(deleted['anon'])} MiB ({kept(deleted, 'anon')} % of the growth to "
            f"{big['endpoints']} endpoints kept), {mib(renewed['anon'])} MiB once the watches were renewed ({kept(renewed, 'anon')} %), "
            f"{mib(relisted['anon'])} MiB after a relist ({kept(relisted, 'anon')} %)")
    if heap:
        text += (f"; the live heap {mib(deleted['heap'])} MiB ({kept(deleted, 'heap')} %), then {mib(renewed['heap'])} MiB "
                 f"({kept(renewed, 'heap')} %), then {mib(relisted['heap'])} MiB ({kept(relisted, 'heap')} %), against "
                 f"{mib(empty['heap'])} MiB empty")
    sign = lambda a, b: f"{'+' if a >= b else '−'}{mib(abs(a - b))}"
    text += (f". Loading the same {big['endpoints']} endpoints again after that takes private memory from {mib(relisted['anon'])} to "
             f"{mib(again['anon'])} MiB" + (f" for {mib(again['heap'] - relisted['heap'])} MiB of live heap" if heap else "")
             + f" ({sign(again['anon'], big['anon'])} MiB against the first load"
             + (f"; live heap {sign(again['heap'], big['heap'])} MiB" if heap else "") + "); relisting them peaks at "
             f"{mib(big_relisted['peak'])} MiB RSS ({sign(big_relisted['peak'], again['rss'])} MiB over the loaded controller).")
    lines += ["", text]
    first = look["first"]
    lines += ["", f"### needle-controller: lookups of {count} different ClusterIPs held open at once (with {big['endpoints']} endpoints loaded)", "",
              "From the lookup client (Python, on the same 2 cores as the controller), two ways: **HTTP/1.1**, each lookup its own mutual "
              "TLS connection (one thread per lookup, all started together: many proxies with one lookup each), first answer = connect + "
              "TLS handshake + request until the first `sync`, head = until the response head; **HTTP/2**, every lookup a stream of one "
              "mutual TLS connection (ALPN h2, as a proxy keeps its lookups), as many as the controller's concurrent-stream limit lets "
              "open, all sent together, first answer = from sending the requests until each stream's first `sync` (the connection "
              "made before). Memory 1 s after the last answer, and 2 s after the client closed them all.", "",
              "| lookups | answered with all endpoints | first answer p50 ms | p99 ms | max ms | head p50 ms | controller CPU s | "
              "RSS growth KiB / lookup | private (anon) growth KiB / lookup | private (anon) MiB before → open → closed | "
              + ("live heap growth KiB / lookup | live heap MiB before → open → closed | " if heap else "") + "controller sockets before → open → closed |",
              "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if heap else "")]

    def lookup_row(label, data, n, heads):
        b, o, a, first = data["before"], data["open"], data["after"], data["first"]
        return (f"| {label} | {data['ok']} | {fmt(percentile(first, 50) * 1000, 0)} | {fmt(percentile(first, 99) * 1000, 0)} | "
                f"{fmt(max(first) * 1000 if first else float('nan'), 0)} | {heads} | {fmt(data['cpu'], 2)} | "
                f"{fmt((o['rss'] - b['rss']) / n / 1024, 1)} | {fmt((o['anon'] - b['anon']) / n / 1024, 1)} | "
                f"{mib(b['anon'])} → {mib(o['anon'])} → {mib(a['anon'])} | "
                + (f"{fmt((o['heap'] - b['heap']) / n / 1024, 1)} | {mib(b['heap'])} → {mib(o['heap'])} → {mib(a['heap'])} | " if heap else "")
                + f"{' → '.join(str(x) for x in data['sockets'])} |")
    lines.append(lookup_row(f"{count} over HTTP/1.1, a connection each", look, count, fmt(percentile(look["head"], 50) * 1000, 0)))
    h2 = look.get("h2", {})
    if "error" in h2:
        lines.append(f"| {count} over HTTP/2 | not measured: {h2['error']} |" + " |" * ((13 if heap else 11) - 2))
    elif h2:
        lines.append(lookup_row(f"{h2['count']} over HTTP/2, streams of one connection", h2, max(h2["count"], 1), "–"))
        if h2["count"] < h2["asked"]:
            notes.append(f"Over HTTP/2 the controller allows {h2['limit']} concurrent streams per connection (its SETTINGS), so only "
                         f"{h2['count']} of the {h2['asked']} lookups could be open on one connection at once. A proxy keeps each "
                         "lookup open as a stream for as long as it uses the destination: what one with more destinations in use than "
                         "that does (a second connection, or lookups waiting for a stream) is not measured here.")
        if h2["errors"]:
            notes.append(f"HTTP/2 lookups that failed or answered otherwise (first 3): {h2['errors']!r}")
    (alone, alone_body), (beside, beside_body) = look["alone"], look["beside"]
    lines += ["", f"One lookup at a time (median of 10, other addresses than the held ones): first answer {fmt(alone * 1000, 1)} ms with no "
              f"other lookup open, {fmt(beside * 1000, 1)} ms with the {count} open (from the response head to the answer: "
              f"{fmt(alone_body * 1000, 1)} → {fmt(beside_body * 1000, 1)} ms)."]
    (cpu_alone, took_alone), (cpu_beside, took_beside) = look["churn"]
    lines += ["", f"All {look['slices']} EndpointSlices put again unchanged (a no-op update each): controller CPU {fmt(cpu_alone, 2)} s "
              f"(taken in after {fmt(took_alone, 1)} s) with no lookup open, {fmt(cpu_beside, 2)} s ({fmt(took_beside, 1)} s) with the "
              f"{count} open: a record equal to the one kept touches no answer, so what is measured is reading the watch events."]
    if look["errors"]:
        lines += ["", f"Lookups that failed or answered otherwise (first 3): {look['errors']!r}"]
    lines += ["", "What grows with what: the controller keeps per Service its cluster IPs and ports, per EndpointSlice its ports and "
              "endpoints, per pod its IPs, service account, meshed flag and opaque ports (the rest of each object is dropped as it is "
              "decoded), so its live memory grows linearly with Services, endpoints and pods (the per-endpoint figure above) and goes "
              "when they go (part of it only at the next relist, which rebuilds the index: capacity kept and reused, most likely the "
              "dictionaries'); each open lookup adds its connection (TLS, buffers, stream) and, per distinct address looked up, the "
              "current and previous answer kept to send differences (the per-lookup figure above); a cluster change costs an answer "
              "only for the looked-up addresses it may alter (the no-op update above). A relist holds every decoded object of the collection until its last page has "
              "arrived (the peak above). Private memory (RssAnon) does not come back down when the live heap does: glibc malloc "
              "keeps most freed pages for later allocations (how much of them a second load reuses is above)."]
    lines += [""] + notes if notes else []
    lines += ["", f"(The controller section took {seconds:.0f} s; binary `{args.controller}`.)"]
    return lines + [""]


# ---------------------------------------------------------------------------------------------- the lookup client

def client_main(argv):
    """Runs in the controller's namespace: JSON commands on standard input, one JSON answer line each.
      {"ask": "IP:PORT", "timeout": s}        one lookup, closed after its first batch: {"lines": [...]}
      {"open": ["IP:PORT", ...], "timeout": s} one lookup each, all at once, kept open:
                                               {"results": [{"seconds", "head", "endpoints"} or {"error"}]}
      {"open_h2": ["IP:PORT", ...], "timeout": s} one HTTP/2 connection (ALPN h2), a stream per lookup, as a
                                               proxy keeps its lookups; as many as the server's concurrent-stream
                                               limit allows: {"alpn", "limit", "connect", "results": [...]}
      {"close": true}                          closes the kept lookups: {"closed": N}"""
    import argparse
    from identity_e2e import CONTROLLER_NAME
    parser = argparse.ArgumentParser()
    for flag in ("--port", "--anchor", "--chain", "--key"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args(argv)
    port = int(args.port)
    held = []
    h2_held = []

    def lookup(address, timeout, result):
        try:
            started = time.perf_counter()
            stream = Stream(port, args.anchor, CONTROLLER_NAME, f"/v1/destinations?address={address}", args.chain, args.key)
            head = time.perf_counter() - started
            if stream.status != 200:
                stream.close()
                result["error"] = f"HTTP {stream.status}"
                return None
            text = stream.lines_until(lambda t: "sync\n" in t, timeout)
            result.update(seconds=time.perf_counter() - started, head=head)
            lines = text.splitlines()
            if "sync" not in lines:
                result["error"] = f"no sync within {timeout} s: {text[:200]!r}"
            result["lines"] = lines[:lines.index("sync") + 1] if "sync" in lines else lines
            return stream
        except Exception as error:  # reported to the benchmark, which decides
            result["error"] = f"{type(error).__name__}: {error}"
            return None

    for line in sys.stdin:
        command = json.loads(line)
        if "ask" in command:
            result = {}
            stream = lookup(command["ask"], command.get("timeout", 10), result)
            if stream:
                stream.close()
            answer = {"error": result["error"]} if "error" in result else {"lines": result["lines"], "seconds": result["seconds"],
                                                                            "head": result["head"]}
        elif "open" in command:
            results = [{} for _ in command["open"]]
            streams = [None] * len(results)
            gate = threading.Barrier(len(results) + 1)

            def one(index, address):
                gate.wait()
                streams[index] = lookup(address, command.get("timeout", 60), results[index])
            threads = [threading.Thread(target=one, args=(i, a), daemon=True) for i, a in enumerate(command["open"])]
            for thread in threads:
                thread.start()
            gate.wait()
            for thread in threads:
                thread.join()
            held += [s for s in streams if s]
            answer = {"results": [{"error": r["error"]} if "error" in r else
                                  {"seconds": r["seconds"], "head": r["head"], "endpoints": sum(1 for l in r["lines"] if l.startswith("add "))}
                                  for r in results]}
        elif "open_h2" in command:
            try:
                connection = H2Lookups(port, args.anchor, CONTROLLER_NAME, args.chain, args.key)
            except Exception as error:
                answer = {"error": f"{type(error).__name__}: {error}"}
            else:
                answer = connection.open(command["open_h2"], command.get("timeout", 60))
                if connection.alpn == "h2":
                    h2_held.append(connection)
                else:
                    connection.close()
        elif "close" in command:
            for stream in held:
                stream.close()
            for connection in h2_held:
                connection.close()
            answer = {"closed": len(held) + sum(len(c.opened) for c in h2_held)}
            held, h2_held = [], []
        else:
            answer = {"error": "unknown command"}
        print(json.dumps(answer), flush=True)


class H2Lookups:
    """Lookups as streams of one HTTP/2 connection (the `h2` package), as a proxy keeps them: opened together,
    read until each one's first `sync`, then held open by a thread that keeps reading (and acknowledging)
    until closed."""

    def __init__(self, port, anchor, server_name, chain, key):
        import socket, ssl
        import h2.config, h2.connection
        self.server_name = server_name
        context = ssl.create_default_context(cafile=anchor)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_cert_chain(chain, key)
        context.set_alpn_protocols(["h2"])
        started = time.perf_counter()
        self.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname=server_name)
        self.alpn = self.sock.selected_alpn_protocol()
        self.connect = time.perf_counter() - started
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.lock = threading.Lock()
        self.opened, self.text, self.started, self.first, self.status = [], {}, {}, {}, {}
        self.closed = threading.Event()
        self.settings = False

    def pump(self, timeout):
        """Reads once (up to `timeout`), handles the events, sends what the connection has to send."""
        import socket
        import h2.events
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return True
        if not data:
            return False
        with self.lock:
            now = time.perf_counter()
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    self.status[event.stream_id] = dict(event.headers).get(":status")
                elif isinstance(event, h2.events.DataReceived):
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    self.text[event.stream_id] = self.text.get(event.stream_id, "") + event.data.decode()
                    if event.stream_id not in self.first and "sync\n" in self.text[event.stream_id]:
                        self.first[event.stream_id] = now
                elif isinstance(event, h2.events.RemoteSettingsChanged):
                    self.settings = True
                elif isinstance(event, h2.events.ConnectionTerminated):
                    return False
            self.sock.sendall(self.conn.data_to_send())
        return True

    def open(self, addresses, timeout):
        if self.alpn != "h2":
            return {"alpn": self.alpn, "error": f"the controller did not negotiate h2 (ALPN {self.alpn!r})"}
        with self.lock:
            self.conn.initiate_connection()
            self.sock.sendall(self.conn.data_to_send())
        deadline = time.time() + 10
        while time.time() < deadline and not self.settings:
            if not self.pump(0.5):
                break
        limit = self.conn.remote_settings.max_concurrent_streams
        with self.lock:
            for address in addresses:
                if self.conn.open_outbound_streams >= limit:
                    break
                stream_id = self.conn.get_next_available_stream_id()
                self.conn.send_headers(stream_id, [(":method", "GET"), (":scheme", "https"), (":authority", self.server_name),
                                                   (":path", f"/v1/destinations?address={address}")], end_stream=True)
                self.opened.append(stream_id)
            sent = time.perf_counter()
            for stream_id in self.opened:
                self.started[stream_id] = sent
            self.sock.sendall(self.conn.data_to_send())
        deadline = time.time() + timeout
        while time.time() < deadline and len(self.first) < len(self.opened):
            if not self.pump(0.5):
                break
        threading.Thread(target=self.hold, daemon=True).start()
        results = []
        for stream_id in self.opened:
            if stream_id in self.first:
                lines = self.text[stream_id].splitlines()
                results.append({"seconds": self.first[stream_id] - self.started[stream_id], "head": 0.0,
                                "endpoints": sum(1 for l in lines[:lines.index("sync")] if l.startswith("add "))})
            else:
                results.append({"error": f"status {self.status.get(stream_id)}, no sync within {timeout} s"})
        return {"alpn": self.alpn, "limit": limit, "connect": self.connect, "results": results,
                "not_opened": len(addresses) - len(self.opened)}

    def hold(self):
        while not self.closed.is_set():
            try:
                if not self.pump(1.0):
                    return
            except OSError:
                return

    def close(self):
        self.closed.set()
        try:
            self.sock.close()
        except OSError:
            pass


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        client_main(sys.argv[2:])
    else:
        sys.exit("controller_bench.py is run from bench.py (its `client` mode is the benchmark's lookup client)")
