#!/usr/bin/env python3
"""The mesh end to end (DESIGN §7, §8): needle-controller, needle-init and needle-proxy together, in network
namespaces laid out like a small cluster (meshnet.MeshNetwork). A "node" namespace routes between the pods
and runs the stand-in Kubernetes API (TokenReview + list/watch of Services, EndpointSlices and pods), the
controller (identity and destination services), a DNS stand-in and a kube-proxy stand-in (DNAT of the
Service's ClusterIP to the unmeshed pod). Pods: a meshed client, two meshed endpoints web-1 and web-2 and an
unmeshed one legacy-1 of Service shop/web (HTTP/1.1, h2c and an opaque server-speaks-first TCP port), and an
unmeshed client.

Checks: per-request balancing over one HTTP/1.1 and one h2c connection, per-connection opaque TCP; a packet
capture on the node's veths shows mutual TLS to the meshed endpoints and plaintext to the unmeshed one; the
metrics name both ends; an endpoint that leaves the EndpointSlice gets no more requests within 5 s, with
no request failing; with the controller stopped, connections keep their last answer, a fresh lookup
falls back to the original destination (counted), and mTLS comes back once the controller does.
Needs root: without it, prints SKIP and exits 0. Every process it starts is killed at the end, even on
failure; every loop is bounded in count and time."""

import argparse, collections, json, os, shutil, signal, struct, subprocess, sys, time, traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from netns import have_root  # noqa: E402
from meshnet import MeshNetwork  # noqa: E402
from proxy_e2e import Pod, check, results  # noqa: E402
from webhook_e2e import issue, make_ca, run, wait_for  # noqa: E402
from identity_e2e import CONTROLLER_NAME, make_issuer  # noqa: E402
from destination_checks import POD_PATH, SERVICE_PATH, SLICE_PATH  # noqa: E402

TOOLS = os.path.join(HERE, "tools")
AUDIENCE = "identity.needle.dev"
CLUSTER_IP = "10.96.0.10"
WEB_NAME = "web.shop.serviceaccount.identity.needle.cluster.local"
CLIENT_NAME = "client.shop.serviceaccount.identity.needle.cluster.local"
IDENTITY_HOST = "needle-identity.needle.svc.cluster.local"
DESTINATION_HOST = "needle-destination.needle.svc.cluster.local"
PROXY_UID, APP_UID = 2102, 1000
HTTP_PORT, H2C_PORT, TCP_PORT = 8080, 9090, 7000
APP_PORTS = (HTTP_PORT, H2C_PORT, TCP_PORT)
# pod short name -> (pod object name, service account, meshed)
PODS = {"client": ("client", "client", True), "web1": ("web-1", "web", True), "web2": ("web-2", "web", True),
        "legacy": ("legacy-1", "default", False), "plain": ("plain", "default", False)}
ENDPOINTS = ("web1", "web2", "legacy")


class MeshPod(Pod):
    """A pod of the mesh: proxy_e2e.Pod's curl and metric parsing, its admin port read from the node."""

    def __init__(self, net, name, proxy, init):
        super().__init__(net, proxy, init)
        self.name = name
        self.ip = net.ip[name]

    def metrics(self):
        return self.net.run(self.net.node, ["curl", "-s", "--max-time", "5", f"http://{self.ip}:4191/metrics"]).stdout

    def admin_status(self, path):
        return self.net.run(self.net.node, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3",
                                            f"http://{self.ip}:4191{path}"]).stdout


class StandInAPI:
    """Drives tools/mesh_api.py: puts and deletes objects through its standard input."""

    def __init__(self, proc):
        self.proc = proc

    def command(self, obj):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().decode().strip()
        if not line.startswith("done"):
            raise RuntimeError(f"the stand-in API said {line!r}")

    def put(self, path, obj):
        self.command({"put": path, "object": obj})


def service_object():
    return {"metadata": {"name": "web", "namespace": "shop"},
            "spec": {"clusterIP": CLUSTER_IP, "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                {"name": "h2c", "port": 81, "targetPort": H2C_PORT, "protocol": "TCP"},
                {"name": "tcp", "port": 82, "targetPort": "tcp", "protocol": "TCP"}]}}


def slice_object(net, members):
    return {"metadata": {"name": "web-abc", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": HTTP_PORT, "protocol": "TCP"}, {"name": "h2c", "port": H2C_PORT, "protocol": "TCP"},
                      {"name": "tcp", "port": TCP_PORT, "protocol": "TCP"}],
            "endpoints": [{"addresses": [net.ip[m]], "conditions": {"ready": True},
                           "targetRef": {"kind": "Pod", "namespace": "shop", "name": PODS[m][0]}} for m in members]}


def pod_object(net, short):
    name, account, meshed = PODS[short]
    ports = [{"name": "http", "containerPort": HTTP_PORT}, {"name": "h2c", "containerPort": H2C_PORT},
             {"name": "tcp", "containerPort": TCP_PORT}]
    containers = [{"name": "app", "ports": ports}]
    if meshed:
        env = [{"name": "NEEDLE_PROXY_OPAQUE_PORTS", "value": str(TCP_PORT)}] if short in ENDPOINTS else []
        containers.append({"name": "needle-proxy", "env": env})
    return {"metadata": {"name": name, "namespace": "shop"},
            "spec": {"serviceAccountName": account, "containers": containers},
            "status": {"phase": "Running", "podIP": net.ip[short]}}


# ---- packet capture ---------------------------------------------------------------------------------

def read_pcap(path):
    """(src, sport, dst, dport, seq, flags, payload) of each IPv4/TCP packet in a libpcap file on Ethernet."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        return []
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"{path}: not a pcap file")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    if linktype != 1:
        raise ValueError(f"{path}: link type {linktype}, not Ethernet")
    packets, offset = [], 24
    while offset + 16 <= len(data):
        _, _, captured, _ = struct.unpack(endian + "IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + captured]
        offset += 16 + captured
        if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        header, total = (ip[0] & 0x0F) * 4, struct.unpack("!H", ip[2:4])[0]
        if ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ip = ip[:total]
        tcp = ip[header:]
        if len(tcp) < 20:
            continue
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        tcp_header = (tcp[12] >> 4) * 4
        src, dst = ".".join(map(str, ip[12:16])), ".".join(map(str, ip[16:20]))
        packets.append((src, sport, dst, dport, seq, tcp[13], tcp[tcp_header:]))
    return packets


def tcp_streams(packets):
    """Each direction of each TCP connection: its payload bytes in sequence order (retransmissions once)."""
    segments = collections.defaultdict(dict)
    first = {}
    for src, sport, dst, dport, seq, flags, payload in packets:
        key = (src, sport, dst, dport)
        if flags & 0x02:  # SYN: the data starts one after it
            first[key] = (seq + 1) & 0xFFFFFFFF
        if payload:
            first.setdefault(key, seq)
            segments[key].setdefault(seq, payload)
    streams = {}
    for key, by_seq in segments.items():
        base = first[key]
        stream, position = bytearray(), 0
        for relative, payload in sorted(((seq - base) & 0xFFFFFFFF, payload) for seq, payload in by_seq.items()):
            if relative + len(payload) <= position:
                continue
            stream += payload[max(0, position - relative):]
            position = relative + len(payload)
        streams[key] = bytes(stream)
    return streams


def tls_records(stream):
    """The content types of the TLS records the stream is made of, or None if it is not TLS records."""
    types, offset = [], 0
    while offset + 5 <= len(stream):
        kind, version, length = stream[offset], struct.unpack("!H", stream[offset + 1:offset + 3])[0], struct.unpack("!H", stream[offset + 3:offset + 5])[0]
        if kind not in (20, 21, 22, 23) or version not in (0x0301, 0x0302, 0x0303) or length > 16384 + 2048:
            return None
        types.append(kind)
        offset += 5 + length
    return types if types else None


PLAINTEXT = (b"GET /", b"HTTP/1.1", b"PRI * HTTP/2.0", b"HELLO ")


def analyse_capture(path, app_ip):
    """Per app port: connections, those made of TLS records only (starting with a handshake), and the
    plaintext markers seen in either direction."""
    streams = tcp_streams(read_pcap(path))
    report = {port: {"connections": set(), "tls": set(), "not_tls": set(), "plaintext": collections.Counter()} for port in APP_PORTS}
    for (src, sport, dst, dport), stream in streams.items():
        if dst == app_ip and dport in APP_PORTS:
            port, connection = dport, (src, sport)
        elif src == app_ip and sport in APP_PORTS:
            port, connection = sport, (dst, dport)
        else:
            continue
        entry = report[port]
        entry["connections"].add(connection)
        records = tls_records(stream)
        if records and stream[0] == 0x16:
            entry["tls"].add(connection)
        else:
            entry["not_tls"].add(connection)
        for marker in PLAINTEXT:
            if marker in stream:
                entry["plaintext"][marker.decode()] += 1
    return report


def describe(report):
    return "; ".join(f"{port}: {len(e['connections'])} conns, {len(e['tls'] - e['not_tls'])} TLS, "
                     f"{len(e['not_tls'])} not TLS, plaintext {dict(e['plaintext'])}" for port, e in report.items())


# ---- traffic ----------------------------------------------------------------------------------------

def parse_lines(output):
    """The per-request lines of http_keepalive.py / h2c_many.py: (time or None, ok, app) and the summary."""
    answers, summary = [], None
    for line in output.splitlines():
        parts = line.split()
        if line.startswith("summary"):
            summary = dict(p.split("=") for p in parts[1:])
        elif len(parts) >= 2 and parts[1] in ("ok", "fail"):  # http_keepalive: "<time> ok <n> <status> <app>"
            answers.append((float(parts[0]), parts[1] == "ok", parts[4] if parts[1] == "ok" else " ".join(parts[2:])))
        elif parts and parts[0] in ("ok", "fail"):  # h2c_many: "ok <sid> <status> <app>"
            answers.append((None, parts[0] == "ok", parts[3] if parts[0] == "ok" else " ".join(parts[1:])))
    return answers, summary


def app_counts(answers):
    return collections.Counter(app for _, ok, app in answers if ok)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--proxy", required=True)
    parser.add_argument("--init", required=True)
    parser.add_argument("--controller", required=True)
    parser.add_argument("--log-level", default="info", help="NEEDLE_PROXY_LOG and the controller's --log-level")
    parser.add_argument("--logs", help="copy every log and capture here at the end (for debugging)")
    args = parser.parse_args()
    if not have_root():
        print("SKIP mesh end-to-end: needs root for network namespaces, iptables and tcpdump (CI runs as root)")
        return 0
    started = time.time()
    with MeshNetwork(list(PODS), tag="mesh") as net:
        try:
            scenario(net, args)
        except Exception:  # a broken step ends the run as a failure, still with the summary line
            check("the scenario ran to its end", False, traceback.format_exc()[-1500:])
        finally:
            if args.logs:
                os.makedirs(args.logs, exist_ok=True)
                for name in os.listdir(net.scratch):
                    if name.endswith((".log", ".pcap")):
                        shutil.copy(os.path.join(net.scratch, name), args.logs)
    failed = results.count(False)
    print(f"info: mesh e2e took {time.time() - started:.0f} s", flush=True)
    print(f"mesh e2e: {results.count(True)} passed, {failed} failed")
    return 1 if failed else 0


def scenario(net, args):
    py = sys.executable
    proxy_binary, init_binary = net.install(os.path.abspath(args.proxy)), net.install(os.path.abspath(args.init))
    controller = net.install(os.path.abspath(args.controller))
    tools = {name: net.install(os.path.join(TOOLS, name))
             for name in ("http_app.py", "h2c_app.py", "banner_tcp.py", "dns_server.py", "mesh_api.py", "token_review_api.py",
                          "cluster_api.py", "http_keepalive.py", "h2c_many.py")}
    work, node, NODE = net.scratch, net.node, net.NODE_IP
    log = lambda name: os.path.join(work, name)

    # Trust anchor, issuer and the API's serving certificate, as proxy_identity_e2e.py makes them.
    anchor_key, anchor = make_ca(work)
    issuer_crt, issuer_key = make_issuer(work, anchor_key, anchor, "issuer")
    api_crt, api_key = issue(work, anchor_key, anchor, "api")
    tokens = os.path.join(work, "tokens.json")
    with open(tokens, "w") as f:
        json.dump({f"{short}-token": [f"system:serviceaccount:shop:{PODS[short][1]}", [AUDIENCE]]
                   for short in PODS if PODS[short][2]}, f)
    controller_token = os.path.join(work, "controller-token")
    with open(controller_token, "w") as f:
        f.write("controller-token\n")

    # The node: stand-in API, DNS, controller, kube-proxy stand-in.
    api_proc = subprocess.Popen(net.command(node, [py, tools["mesh_api.py"], "--port", "6443", "--cert", api_crt, "--key", api_key,
                                                   "--controller-token", "controller-token", "--tokens", tokens]),
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(log("api.log"), "ab"))
    net.processes.append(api_proc)
    if api_proc.stdout.readline().decode().strip() != "ready":
        raise RuntimeError("the stand-in API did not start")
    api = StandInAPI(api_proc)
    api.put(SERVICE_PATH, service_object())
    for short in PODS:
        api.put(POD_PATH, pod_object(net, short))
    api.put(SLICE_PATH, slice_object(net, ENDPOINTS))

    net.spawn(node, [py, tools["dns_server.py"], "--host", NODE, "--record", f"{IDENTITY_HOST}={NODE}",
                     "--record", f"{DESTINATION_HOST}={NODE}", "--log", log("dns-queries.log")], ready_line="ready")
    controller_argv = [controller, "--identity-listen", f"{NODE}:8080", "--destination-listen", f"{NODE}:8086",
                       "--admin-listen", "127.0.0.1:9996", "--trust-anchors", anchor, "--issuer-cert", issuer_crt,
                       "--issuer-key", issuer_key, "--trust-domain", "cluster.local", "--kube-api-server", "https://127.0.0.1:6443",
                       "--kube-ca-file", anchor, "--kube-token-file", controller_token, "--log-level", args.log_level,
                       "--shutdown-grace-period", "2"]
    controller_ready = lambda: net.run(node, ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2",
                                              "http://127.0.0.1:9996/ready"]).stdout == "200"
    ctl = net.spawn_logged(node, controller_argv, log("controller-1.log"))
    check("the controller is ready in the node namespace", wait_for(controller_ready, 20, 0.25))
    for port, target in ((80, HTTP_PORT), (81, H2C_PORT), (82, TCP_PORT)):
        net.sh("ip", "netns", "exec", node, "iptables", "-t", "nat", "-A", "PREROUTING", "-d", CLUSTER_IP, "-p", "tcp",
               "--dport", str(port), "-j", "DNAT", "--to-destination", f"{net.ip['legacy']}:{target}")

    # The pods: apps everywhere but the clients; needle-init and needle-proxy in the meshed ones.
    for short in ENDPOINTS:
        name = PODS[short][0]
        ns = net.ns[short]
        net.spawn(ns, [py, tools["http_app.py"], "--port", str(HTTP_PORT), "--name", name, "--lifetime", "600"], ready_line="ready")
        net.spawn(ns, [py, tools["h2c_app.py"], "--port", str(H2C_PORT), "--name", name, "--lifetime", "600"], ready_line="ready")
        net.spawn(ns, [py, tools["banner_tcp.py"], "--port", str(TCP_PORT), "--name", name, "--lifetime", "600"], ready_line="ready")
    with open(anchor) as f:
        anchors = f.read()
    pods = {}
    for short, (name, account, meshed) in PODS.items():
        if not meshed:
            continue
        pod = MeshPod(net, short, proxy_binary, init_binary)
        pods[short] = pod
        net.resolv_conf(short, NODE)
        applied = net.run(net.ns[short], [init_binary, "--proxy-uid", str(PROXY_UID), "--inbound-ports-to-ignore", "4191"])
        if applied.returncode != 0:
            check(f"needle-init applied in {short}", False, applied.stderr)
        token = os.path.join(work, f"{short}.token")
        with open(token, "w") as f:
            f.write(f"{short}-token\n")
        os.chmod(token, 0o644)
        env = {
            "PATH": "/usr/bin:/bin",
            "NEEDLE_PROXY_INBOUND_IPS": net.ip[short], "NEEDLE_PROXY_INBOUND_PORTS": f"{HTTP_PORT},{H2C_PORT},{TCP_PORT}",
            "NEEDLE_PROXY_IDENTITY_SVC_ADDR": f"{IDENTITY_HOST}.:8080", "NEEDLE_PROXY_IDENTITY_SVC_NAME": CONTROLLER_NAME,
            "NEEDLE_PROXY_IDENTITY_TRUST_ANCHORS": anchors, "NEEDLE_PROXY_IDENTITY_TOKEN_FILE": token,
            "NEEDLE_PROXY_IDENTITY_TRUST_DOMAIN": "cluster.local",
            "NEEDLE_PROXY_DESTINATION_SVC_ADDR": f"{DESTINATION_HOST}.:8086", "NEEDLE_PROXY_DESTINATION_SVC_NAME": CONTROLLER_NAME,
            "NEEDLE_POD_NAMESPACE": "shop", "NEEDLE_POD_SERVICE_ACCOUNT": account, "NEEDLE_POD_NAME": name,
            "NEEDLE_PROXY_LOG": args.log_level,
        }
        if short in ENDPOINTS:
            env["NEEDLE_PROXY_OPAQUE_PORTS"] = str(TCP_PORT)
        pod.proxy = net.spawn_logged(net.ns[short], ["env", "-i"] + [f"{k}={v}" for k, v in env.items()] + [proxy_binary],
                                     log(f"proxy-{short}.log"), uid=PROXY_UID)

    # 1. Ready.
    ready = wait_for(lambda: all(pod.admin_status("/ready") == "200" for pod in pods.values()), 30, 0.25)
    check("every proxy gets its certificate and becomes ready (/ready 200)", ready,
          {short: pod.admin_status("/ready") for short, pod in pods.items()})

    # The clients run as another uid (so needle-init redirects them), which cannot read root's Python packages:
    # h2 and the packages it needs are copied where it can.
    pylib = os.path.join(work, "pylib")
    for package in ("h2", "hpack", "hyperframe"):
        module = __import__(package)
        shutil.copytree(os.path.dirname(module.__file__), os.path.join(pylib, package))
    subprocess.run(["chmod", "-R", "a+rX", pylib], check=True)
    client_env = dict(os.environ, PYTHONPATH=pylib)
    client = lambda tool, *argv, timeout=60: subprocess.run(net.command(net.ns["client"], [py, tools[tool], *argv], uid=APP_UID),
                                                            capture_output=True, text=True, timeout=timeout, env=client_env)

    # 5 (capture on): the node's ends of the endpoints' veths, during 2-4.
    captures = {}
    for short in ENDPOINTS:
        path = log(f"capture-{short}.pcap")
        proc = net.spawn_logged(node, ["tcpdump", "-i", net.node_link[short], "--immediate-mode", "-U", "-n", "-s", "0", "-Z", "root", "-w", path, "tcp"],
                                log(f"tcpdump-{short}.log"))
        captures[short] = (proc, path)
    wait_for(lambda: all("listening on" in open(log(f"tcpdump-{s}.log")).read() for s in ENDPOINTS), 10, 0.25)

    # 2. HTTP/1.1 balanced per request over one connection.
    out = client("http_keepalive.py", "--host", CLUSTER_IP, "--port", "80", "--count", "60", "--timeout", "5")
    answers, summary = parse_lines(out.stdout)
    counts = app_counts(answers)
    check("60 HTTP/1.1 requests on ONE keep-alive connection to the ClusterIP are balanced per request over web-1, web-2 "
          "and legacy-1, none failing",
          summary == {"ok": "60", "fail": "0"} and all(counts[PODS[s][0]] > 0 for s in ENDPOINTS),
          f"{dict(counts)} {summary} {out.stdout[-300:]} {out.stderr[-300:]}")
    print(f"info: HTTP/1.1 answers per endpoint: {dict(counts)}", flush=True)

    # 3. h2c balanced per stream over one connection.
    out = client("h2c_many.py", "--host", CLUSTER_IP, "--port", "81", "--streams", "60", "--concurrency", "6")
    answers, summary = parse_lines(out.stdout)
    counts = app_counts(answers)
    check("60 h2c streams on ONE connection (prior knowledge) to the ClusterIP are balanced per stream over web-1, web-2 "
          "and legacy-1, all answered 200",
          summary == {"ok": "60", "fail": "0"} and all(counts[PODS[s][0]] > 0 for s in ENDPOINTS),
          f"{dict(counts)} {summary} {out.stdout[-300:]} {out.stderr[-300:]}")
    print(f"info: h2c answers per endpoint: {dict(counts)}", flush=True)

    # 4. Opaque TCP, per connection.
    out = net.run(net.ns["client"], [py, "-c", f"""
import socket, time
for i in range(12):
    try:
        s = socket.create_connection(("{CLUSTER_IP}", 82), timeout=5)
        line = b""
        while not line.endswith(b"\\n"):
            chunk = s.recv(1)
            if not chunk: raise EOFError("closed before the banner")
            line += chunk
        payload = ("ping %d\\n" % i).encode() * 200
        s.sendall(payload)
        got = b""
        while len(got) < len(payload):
            chunk = s.recv(65536)
            if not chunk: break
            got += chunk
        s.close()
        print("ok", line.decode().split()[1], got == payload, flush=True)
    except Exception as error:
        print("fail", type(error).__name__, error, flush=True)
"""], uid=APP_UID, timeout=120)
    lines = [line.split() for line in out.stdout.splitlines()]
    banners = collections.Counter(parts[1] for parts in lines if parts[0] == "ok" and parts[2] == "True")
    check("12 opaque TCP connections to the ClusterIP's port 82: each gets a banner from an endpoint and its bytes echoed",
          sum(banners.values()) == 12, f"{dict(banners)} {out.stdout[-400:]} {out.stderr[-200:]}")
    check("opaque TCP is balanced per connection (more than one endpoint answered)", len(banners) >= 2, dict(banners))
    print(f"info: TCP banners per endpoint: {dict(banners)}", flush=True)

    # 5. The capture.
    time.sleep(1)
    for proc, _ in captures.values():
        proc.send_signal(signal.SIGINT)
    for proc, _ in captures.values():
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    reports = {}
    for short in ENDPOINTS:
        try:
            reports[short] = analyse_capture(captures[short][1], net.ip[short])
        except (OSError, ValueError) as error:
            reports[short] = None
            check(f"the capture on {short}'s veth is readable", False, error)
    for short in ENDPOINTS:
        if reports.get(short) is not None:
            print(f"info: capture on {PODS[short][0]}'s veth: {describe(reports[short])}", flush=True)
    for short in ("web1", "web2"):
        report = reports.get(short)
        if report is None:
            continue
        conns = sum(len(e["connections"]) for e in report.values())
        not_tls = sum(len(e["not_tls"]) for e in report.values())
        plaintext = sum(sum(e["plaintext"].values()) for e in report.values())
        check(f"capture on {PODS[short][0]}'s veth: every connection to its app ports is TLS records from the first byte, "
              "no plaintext HTTP, h2c preface or banner", conns > 0 and not_tls == 0 and plaintext == 0, describe(report))
    if reports.get("web1") is not None and reports.get("web2") is not None:
        missing = [port for port in APP_PORTS
                   if not ((reports["web1"][port]["tls"] - reports["web1"][port]["not_tls"]) | (reports["web2"][port]["tls"] - reports["web2"][port]["not_tls"]))]
        check("the meshed endpoints were reached over TLS on each app port (HTTP 8080, h2c 9090, opaque TCP 7000)", not missing,
              f"no TLS connection seen on {missing}")
    if reports.get("legacy") is not None:
        report = reports["legacy"]
        check("capture on legacy-1's veth: the unmeshed endpoint is reached in plaintext (GET / seen)",
              report[HTTP_PORT]["plaintext"]["GET /"] > 0, describe(report))

    # The client proxy holds lookups of three Service ports now, all streams of one HTTP/2 connection.
    sockets = net.run(net.ns["client"], ["ss", "-Htn", "state", "established", "dst", f"{NODE}:8086"]).stdout.split("\n")
    sockets = [line for line in sockets if line.strip()]
    check("the client proxy's lookups (HTTP, h2c and TCP ports of the Service) share one connection to the destination service",
          len(sockets) == 1, sockets)

    # 6. Metrics.
    client_pod = pods["client"]
    text = client_pod.metrics()
    mesh_labels = dict(direction="outbound", tls="true", server_id=WEB_NAME, dst_namespace="shop", dst_service="web")
    mesh_requests = client_pod.metric(text, "request_total", **mesh_labels)
    mesh_bytes = client_pod.metric(text, "tcp_write_bytes_total", **mesh_labels) + client_pod.metric(text, "tcp_read_bytes_total", **mesh_labels)
    all_requests = client_pod.metric(text, "request_total", direction="outbound", dst_service="web")
    web_mtls = sum(pods[s].metric(pods[s].metrics(), "request_total", direction="inbound", tls="true", client_id=CLIENT_NAME)
                   for s in ("web1", "web2"))
    per_pod = {pod: client_pod.metric(text, "request_total", **mesh_labels, dst_pod=pod) for pod in ("web-1", "web-2")}
    legacy_requests = client_pod.metric(text, "request_total", direction="outbound", tls="no_identity",
                                        no_tls_reason="not_provided_by_service_discovery", dst_pod="legacy-1")
    check("the client proxy's outbound metrics count each request under the endpoint it went to: tls=\"true\", server_id=web's "
          "TLS name, dst_namespace=\"shop\", dst_service=\"web\", dst_pod for the meshed pods (as many as they received over "
          "mTLS), plaintext with no_tls_reason for the unmeshed one",
          mesh_requests > 0 and mesh_requests == web_mtls and all(count > 0 for count in per_pod.values()) and legacy_requests > 0,
          f"requests {mesh_requests:.0f} ({per_pod}), bytes {mesh_bytes:.0f} under those labels, legacy {legacy_requests:.0f}, while web-1 and web-2 counted {web_mtls:.0f} "
          f"requests from the client over mTLS and the client counted {all_requests:.0f} to dst_service=web")
    for line in text.splitlines():
        if line.startswith("request_total{") and 'direction="outbound"' in line:
            print(f"info: client proxy: {line}", flush=True)
    web1_text = pods["web1"].metrics()
    check("web-1's inbound metrics show the client's identity (client_id) on its requests",
          pods["web1"].metric(web1_text, "request_total", direction="inbound", tls="true", client_id=CLIENT_NAME) > 0,
          "\n".join(line for line in web1_text.splitlines() if line.startswith("request_total"))[:1500])

    # 7. Endpoint removal under one keep-alive connection. Peak-EWMA may leave an endpoint without requests for
    # many seconds (one slow answer, decaying over 10 s), and an endpoint that gets none anyway proves nothing
    # when it leaves: web-2 leaves if it answered in the last second, otherwise the endpoint that answered most.
    # The client must still be answered more than 5 s after the removal (its own timestamps), however fast
    # a loaded machine lets it go: it runs 9.5 s and the removal comes about 2.5 s in.
    proc = net.spawn_logged(net.ns["client"], [py, tools["http_keepalive.py"], "--host", CLUSTER_IP, "--port", "80", "--count", "400",
                                               "--interval", "0.05", "--duration", "9.5"], log("removal-client.log"), uid=APP_UID)
    time.sleep(2.5)
    with open(log("removal-client.log")) as f:
        early, _ = parse_lines(f.read())
    recent = collections.Counter(app for t, ok, app in early if ok and t > time.time() - 1)
    leaving = "web2" if recent["web-2"] or not recent else next(s for s in ENDPOINTS if PODS[s][0] == recent.most_common(1)[0][0])
    gone = PODS[leaving][0]
    removed_at = time.time()
    api.put(SLICE_PATH, slice_object(net, [s for s in ENDPOINTS if s != leaving]))
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
    with open(log("removal-client.log")) as f:
        answers, summary = parse_lines(f.read())
    before = [app for t, ok, app in answers if ok and t < removed_at]
    late = [t - removed_at for t, ok, app in answers if ok and app == gone and t >= removed_at]
    after5 = [t for t in late if t > 5]
    failures = [app for _, ok, app in answers if not ok]
    last_answer = max((t - removed_at for t, ok, _ in answers if ok), default=None)
    check(f"an endpoint ({gone}) removed from the EndpointSlice while a keep-alive connection sends a request every 50 ms: "
          f"no answer from it later than 5 s after, and no request fails",
          gone in before and not after5 and not failures and summary is not None and last_answer is not None and last_answer > 5,
          f"before removal {dict(collections.Counter(before))}, {gone} answers after it at {[round(t, 2) for t in late]} s, "
          f"failures {failures[:3]}, the last answer at {last_answer if last_answer is None else round(last_answer, 2)} s, "
          f"summary {summary}")
    last = max((t for t, ok, app in answers if ok and app == gone), default=None)
    print(f"info: removed {gone} (answers in the second before: {dict(recent)}); its last answer came at "
          + (f"{last - removed_at:+.2f} s from the removal" if last else "never"), flush=True)
    print(f"info: answers before the removal {dict(collections.Counter(before))}, after it "
          f"{dict(collections.Counter(app for t, ok, app in answers if ok and t >= removed_at))}", flush=True)

    # 7b. Only web-1 and web-2 from now on: discovery names only meshed endpoints, so an
    # answer from web-1 or web-2 means discovery and mTLS, one from legacy-1 the kube-proxy stand-in (fallback).
    changed_at = time.time()
    api.put(SLICE_PATH, slice_object(net, ("web1", "web2")))
    seen, rounds, clean = collections.Counter(), 0, []

    def settled():
        nonlocal rounds, clean
        rounds += 1
        out = client("http_keepalive.py", "--host", CLUSTER_IP, "--port", "80", "--count", "10", "--timeout", "5")
        answers, summary = parse_lines(out.stdout)
        counts = app_counts(answers)
        seen.update(counts)
        # Settled: two rounds in a row answered by web-1/web-2 alone (the time of the first of them).
        clean = clean + [time.time()] if summary == {"ok": "10", "fail": "0"} and set(counts) <= {"web-1", "web-2"} else []
        return clean[0] if len(clean) >= 2 else None

    settled_at = wait_for(settled, changed_at + 10 - time.time(), 0.2)
    check("the EndpointSlice changed to web-1 and web-2 only: within 5 s new connections are answered by them alone",
          settled_at is not None and settled_at - changed_at < 5,
          f"{rounds} rounds, {'settled after %.1f s' % (settled_at - changed_at) if settled_at else 'never settled'}: {dict(seen)}")
    if settled_at is not None:
        print(f"info: new connections answered by web-1 and web-2 only {settled_at - changed_at:.1f} s after the change ({dict(seen)})",
              flush=True)
    probe = net.run(net.ns["client"], [py, "-c", f"""
import socket
for i in range(3):
    try:
        s = socket.create_connection(("{CLUSTER_IP}", 82), timeout=3)
        s.settimeout(3)
        print("banner", s.recv(100).decode().strip() or "none (closed)")
    except Exception as error:
        print("error", type(error).__name__, error)
"""], uid=APP_UID, timeout=60)
    print(f"info: opaque TCP to the ClusterIP's port 82 now that all its endpoints are meshed: "
          f"{' | '.join(probe.stdout.splitlines())}", flush=True)

    # 8. The controller stops, then comes back.
    client_metrics = lambda: pods["client"].metrics()
    fallback = lambda: pods["client"].metric(client_metrics(), "outbound_discovery_fallback_total")
    mesh_requests = lambda: pods["client"].metric(client_metrics(), "request_total", **mesh_labels)
    long_client = net.spawn_logged(net.ns["client"], [py, tools["http_keepalive.py"], "--host", CLUSTER_IP, "--port", "80", "--count", "200",
                                                      "--interval", "0.1", "--duration", "6"], log("stop-existing-client.log"), uid=APP_UID)
    time.sleep(1)
    stopped_at = time.time()
    ctl.send_signal(signal.SIGTERM)
    try:
        ctl.wait(timeout=10)
    except subprocess.TimeoutExpired:
        ctl.kill()
        ctl.wait(timeout=5)
    check("the controller stops on SIGTERM", ctl.returncode == 0, ctl.returncode)
    time.sleep(1)
    fallback_before, mesh_before = fallback(), mesh_requests()
    out = client("http_keepalive.py", "--host", CLUSTER_IP, "--port", "80", "--count", "10", "--timeout", "5")
    new_answers, new_summary = parse_lines(out.stdout)
    fallback_after, mesh_after = fallback(), mesh_requests()
    try:
        long_client.wait(timeout=30)
    except subprocess.TimeoutExpired:
        long_client.kill()
    with open(log("stop-existing-client.log")) as f:
        answers, summary = parse_lines(f.read())
    after_stop = collections.Counter(app for t, ok, app in answers if ok and t > stopped_at + 0.5)
    # Not a count of answers (paced by a loaded machine's clock): answered until at least 3.5 s after the stop,
    # by the client's own timestamps (it runs 6 s, the stop comes about 1 s in), and no request failed.
    last_answer = max((t - stopped_at for t, ok, _ in answers if ok), default=None)
    check("controller stopped: the open keep-alive connection keeps working, still balanced over the last known (meshed) endpoints",
          summary is not None and summary["fail"] == "0" and not [a for a in answers if not a[1]]
          and last_answer is not None and last_answer >= 3.5 and set(after_stop) <= {"web-1", "web-2"},
          f"{summary}; answers after the stop: {dict(after_stop)}, "
          f"the last at {last_answer if last_answer is None else round(last_answer, 2)} s")
    check("controller stopped: a new connection while the lookup is in use keeps its last answer (mTLS to web-1/web-2, "
          "counted tls=\"true\", no fallback)",
          new_summary == {"ok": "10", "fail": "0"} and set(app_counts(new_answers)) <= {"web-1", "web-2"}
          and fallback_after == fallback_before and mesh_after >= mesh_before + 10,
          f"{new_summary} {dict(app_counts(new_answers))}; fallbacks {fallback_before:.0f} -> {fallback_after:.0f}; "
          f"outbound tls=\"true\" requests {mesh_before:.0f} -> {mesh_after:.0f}")
    time.sleep(7)  # every lookup idle past its 5 s linger: discarded
    fallback_before, mesh_before = fallback(), mesh_requests()
    out = client("http_keepalive.py", "--host", CLUSTER_IP, "--port", "80", "--count", "10", "--timeout", "5")
    answers, summary = parse_lines(out.stdout)
    counts = app_counts(answers)
    text = client_metrics()
    reasons = [line for line in text.splitlines() if line.startswith("outbound_discovery_fallback_total")]
    check("controller stopped, lookups idle: a new connection goes to the ClusterIP in plaintext (kube-proxy stand-in: all "
          "legacy-1) and outbound_discovery_fallback_total increases",
          summary == {"ok": "10", "fail": "0"} and set(counts) == {"legacy-1"}
          and pods["client"].metric(text, "outbound_discovery_fallback_total") > fallback_before
          and pods["client"].metric(text, "request_total", **mesh_labels) == mesh_before, f"{summary} {dict(counts)} {reasons}")
    restarted_at = time.time()
    ctl = net.spawn_logged(node, controller_argv, log("controller-2.log"))
    attempts, seen = 0, collections.Counter()

    def mesh_back():
        nonlocal attempts
        attempts += 1
        before = mesh_requests()
        out = client("http_keepalive.py", "--host", CLUSTER_IP, "--port", "80", "--count", "6", "--timeout", "5")
        answers, summary = parse_lines(out.stdout)
        counts = app_counts(answers)
        seen.update(counts)
        return summary == {"ok": "6", "fail": "0"} and set(counts) <= {"web-1", "web-2"} and mesh_requests() >= before + 6

    back = wait_for(mesh_back, 40, 1)
    check("controller restarted: new connections use discovery and mTLS again (answered by web-1/web-2, outbound "
          "tls=\"true\" requests grow)", back,
          f"{attempts} attempts over {time.time() - restarted_at:.1f} s, answers {dict(seen)}; controller ready: {controller_ready()}")
    print(f"info: mTLS back {time.time() - restarted_at:.1f} s after the controller restarted ({attempts} attempts)", flush=True)

    # 9. An unmeshed client straight to a meshed pod: permissive inbound.
    out = net.run(net.ns["plain"], ["curl", "-sS", "--max-time", "10", f"http://{net.ip['web1']}:{HTTP_PORT}/hello"])
    check("an unmeshed client reaching web-1's pod IP directly gets plaintext service (permissive inbound)",
          out.stdout.strip() == "hello from web-1", out.stdout + out.stderr)

    if args.logs:
        for short, pod in pods.items():
            with open(log(f"metrics-{short}.log"), "w") as f:
                f.write(pod.metrics())
    for pod in pods.values():
        if pod.proxy.poll() is not None:
            check(f"the {pod.name} proxy is still running", False, f"exited {pod.proxy.returncode}")
    ctl.terminate()


if __name__ == "__main__":
    sys.exit(main())
