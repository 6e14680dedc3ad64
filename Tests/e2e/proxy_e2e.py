#!/usr/bin/env python3
"""needle-proxy end to end: a pod built from network namespaces with needle-init applied, the proxy
running as uid 2102, apps speaking HTTP/1.1, h2c, WebSocket-style upgrades and server-speaks-first TCP;
a client namespace sends traffic in, the pod calls an external namespace out. Checks payloads (several
MiB both ways), status codes, metrics, draining on SIGTERM and that no descriptor is left open.
Needs root: without it, prints SKIP and exits 0."""

import argparse, hashlib, os, re, signal, socket, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netns import PodNetwork, have_root  # noqa: E402
from webhook_e2e import wait_for  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, "tools")
results = []
POD, EXT = PodNetwork.POD_CLIENT_V4, PodNetwork.EXTERNAL_V4
APP_UID = 1000


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(("PASS " if ok else "FAIL ") + name + ("" if ok or not detail else ": " + str(detail)[:500]), flush=True)


def pattern(size):
    block = bytes(range(256)) * 256
    return (block * (size // len(block) + 1))[:size]


class Pod:
    def __init__(self, net, proxy, init):
        self.net, self.proxy_binary, self.init = net, proxy, init
        self.proxy = None

    def curl(self, ns, *args, uid=None, timeout=30):
        return self.net.run(ns, ["curl", "-sS", "--max-time", "20", *args], uid=uid, timeout=timeout)

    def metrics(self):
        return self.curl(self.net.client, f"http://{POD}:4191/metrics").stdout

    def metric(self, text, name, **labels):
        total = 0.0
        for line in text.splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def open_fds(self):
        return len(os.listdir(f"/proc/{self.proxy.pid}/fd"))

    def start_proxy(self, env):
        full = {"PATH": "/usr/bin:/bin"}
        full.update(env)
        argv = ["env", "-i"] + [f"{k}={v}" for k, v in full.items()] + [self.proxy_binary]
        self.proxy = self.net.spawn(self.net.pod, argv, uid=2102)
        waited = self.net.run(self.net.pod, ["env", "-i", self.proxy_binary, "await", "--timeout", "15s"], uid=2102, timeout=30)
        return waited


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--proxy", required=True)
    parser.add_argument("--init", required=True)
    args = parser.parse_args()
    if not have_root():
        print("SKIP needle-proxy end-to-end: needs root for network namespaces and iptables (CI runs as root)")
        return 0
    with PodNetwork("proxy") as net:
        pod = Pod(net, net.install(os.path.abspath(args.proxy)), net.install(os.path.abspath(args.init)))
        py = sys.executable
        tools = {name: net.install(os.path.join(TOOLS, name)) for name in ("http_app.py", "h2c_app.py", "banner_tcp.py")}
        net.spawn(net.pod, [py, tools["http_app.py"], "--port", "8080", "--name", "app"], ready_line="ready")
        net.spawn(net.pod, [py, tools["h2c_app.py"], "--port", "8081"], ready_line="ready")
        net.spawn(net.pod, [py, tools["banner_tcp.py"], "--port", "5000", "--name", "pod-banner"], ready_line="ready")
        net.spawn(net.pod, [py, tools["banner_tcp.py"], "--port", "6379", "--name", "pod-redis"], ready_line="ready")
        net.spawn(net.external, [py, tools["http_app.py"], "--port", "9090", "--name", "external"], ready_line="ready")
        net.spawn(net.pod, [py, tools["http_app.py"], "--bind", "::", "--port", "8082", "--name", "app-v6"], ready_line="ready")
        net.spawn(net.external, [py, tools["http_app.py"], "--bind", "::", "--port", "9095", "--name", "external-v6"],
                  ready_line="ready")

        bad = net.run(net.pod, ["env", "-i", "NEEDLE_PROXY_DETECT_TIMEOUT=soon", "NEEDLE_PROXY_WORKERS=0",
                                "NEEDLE_PROXY_INBOUND_LISTEN_ADDR=nowhere", pod.proxy_binary], uid=2102)
        check("bad configuration exits 64 with one line per bad variable",
              bad.returncode == 64 and len([l for l in bad.stderr.splitlines() if "NEEDLE_PROXY_" in l]) == 3, bad.stderr)

        applied = net.run(net.pod, [pod.init, "--proxy-uid", "2102", "--inbound-ports-to-ignore", "4191"])
        check("needle-init applied", applied.returncode == 0, applied.stderr)
        waited = pod.start_proxy({
            "NEEDLE_PROXY_INBOUND_IPS": f"{POD},{PodNetwork.POD_EXTERNAL_V4},{PodNetwork.POD_CLIENT_V6}",
            "NEEDLE_PROXY_DETECT_TIMEOUT": "1s",
            "NEEDLE_PROXY_SHUTDOWN_GRACE_PERIOD": "10s",
            "NEEDLE_PROXY_SHUTDOWN_ENDPOINT_ENABLED": "true",
            "NEEDLE_PROXY_INBOUND_PORTS": "8080,8081,8082,5000,6379",
            "NEEDLE_POD_NAME": "e2e", "NEEDLE_POD_NAMESPACE": "default",
        })
        check("needle-proxy await exits 0 once the proxy is ready", waited.returncode == 0, waited.stderr)
        baseline_fds = pod.open_fds()

        # HTTP/1.1 inbound.
        out = pod.curl(net.client, "-D", "-", f"http://{POD}:8080/hello")
        check("HTTP/1.1 inbound: a GET reaches the app through the proxy, Host preserved",
              "hello from app" in out.stdout and f"X-Seen-Host: {POD}:8080" in out.stdout, out.stdout + out.stderr)
        check("hop-by-hop headers are not forwarded (the app sees no Connection header)",
              re.search(r"^X-Seen-Connection:\s*$", out.stdout, re.MULTILINE) is not None, out.stdout)
        for status in (201, 404, 503):
            code = pod.curl(net.client, "-o", "/dev/null", "-w", "%{http_code}", f"http://{POD}:8080/status/{status}").stdout
            check(f"HTTP/1.1 status {status} passes through", code == str(status), code)
        big = 8 * 1024 * 1024
        path = os.path.join(net.scratch, "big.bin")
        pod.curl(net.client, "-o", path, f"http://{POD}:8080/big?size={big}")
        with open(path, "rb") as f:
            got = f.read()
        check("HTTP/1.1: an 8 MiB response streams through intact", hashlib.sha256(got).digest() == hashlib.sha256(pattern(big)).digest(), len(got))
        upload = os.path.join(net.scratch, "upload.bin")
        with open(upload, "wb") as f:
            f.write(pattern(6 * 1024 * 1024)[::-1])
        echoed = os.path.join(net.scratch, "echoed.bin")
        pod.curl(net.client, "--data-binary", f"@{upload}", "-H", "Content-Type: application/octet-stream", "-o", echoed, f"http://{POD}:8080/echo")
        check("HTTP/1.1: a 6 MiB request body is streamed to the app and echoed intact",
              open(echoed, "rb").read() == open(upload, "rb").read())
        chunked = pod.curl(net.client, "--data-binary", f"@{upload}", "-H", "Transfer-Encoding: chunked", "-o", echoed, "-w", "%{http_code}",
                           f"http://{POD}:8080/echo")
        check("HTTP/1.1: a chunked request body arrives intact", chunked.stdout == "200" and open(echoed, "rb").read() == open(upload, "rb").read(),
              chunked.stdout + chunked.stderr)
        reuse = pod.curl(net.client, "-v", "-o", "/dev/null", "-o", "/dev/null", f"http://{POD}:8080/hello", f"http://{POD}:8080/hello")
        check("HTTP/1.1 keep-alive: two requests share one client connection", "Re-using existing connection" in reuse.stderr, reuse.stderr[-300:])
        pipelined = net.run(net.client, [py, "-c", f"""
import socket
s = socket.create_connection(("{POD}", 8080), timeout=10)
s.sendall(b"GET /status/201 HTTP/1.1\\r\\nHost: a\\r\\n\\r\\nPOST /echo HTTP/1.1\\r\\nHost: a\\r\\nContent-Length: 5\\r\\n\\r\\nhello"
          b"GET /status/404 HTTP/1.1\\r\\nHost: a\\r\\nConnection: close\\r\\n\\r\\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk: break
    data += chunk
import re
print([code.decode() for code in re.findall(rb"HTTP/1\\.1 (\\d{{3}}) ", data)], b"hello" in data)
"""])
        check("HTTP/1.1 pipelining: three requests in one write (one with a body) are answered in order",
              pipelined.stdout.strip() == "['201', '200', '404'] True", pipelined.stdout + pipelined.stderr)
        code = pod.curl(net.client, "-o", "/dev/null", "-w", "%{http_code}", f"http://{POD}:8099/nothing-listens").stdout
        check("HTTP/1.1 to a port where nothing listens is 502", code == "502", code)

        # WebSocket-style upgrade continues as a byte stream.
        s = net.run(net.client, [py, "-c", f"""
import socket
s = socket.create_connection(("{POD}", 8080), timeout=10)
s.sendall(b"GET /ws HTTP/1.1\\r\\nHost: app\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\n\\r\\n")
head = b""
while b"\\r\\n\\r\\n" not in head:
    head += s.recv(1)
payload = bytes(range(256)) * 4096
s.sendall(payload)
got = b""
while len(got) < len(payload):
    chunk = s.recv(65536)
    if not chunk: break
    got += chunk
print(head.split(b"\\r\\n")[0].decode(), got == payload)
"""])
        check("an Upgrade (WebSocket) continues as TCP after the 101, 1 MiB echoed both ways",
              s.stdout.strip() == "HTTP/1.1 101 Switching Protocols True", s.stdout + s.stderr)

        # HTTP/2 cleartext with prior knowledge.
        h2big = os.path.join(net.scratch, "h2big.bin")
        out = pod.curl(net.client, "--http2-prior-knowledge", "-o", h2big, "-w", "%{http_version} %{http_code}", f"http://{POD}:8081/big?size={big}")
        check("h2c: an 8 MiB response streams through intact", out.stdout == "2 200" and open(h2big, "rb").read() == pattern(big),
              out.stdout + out.stderr)
        out = pod.curl(net.client, "--http2-prior-knowledge", "--data-binary", f"@{upload}", "-o", echoed, "-w", "%{http_code}", f"http://{POD}:8081/echo")
        check("h2c: a 6 MiB request body is echoed intact", out.stdout == "200" and open(echoed, "rb").read() == open(upload, "rb").read(),
              out.stdout + out.stderr)
        code = pod.curl(net.client, "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_code}", f"http://{POD}:8081/status/503").stdout
        check("h2c: status codes pass through", code == "503", code)
        out = pod.curl(net.client, "--http2-prior-knowledge", "--parallel", "--parallel-immediate", "-w", "%{url_effective} %{time_total}\\n",
                       "-o", "/dev/null", "-o", "/dev/null", f"http://{POD}:8081/slow?ms=3000", f"http://{POD}:8081/status/200")
        times = dict(line.split(" ", 1) for line in out.stdout.strip().splitlines() if " " in line)
        fast = float(times.get(f"http://{POD}:8081/status/200", "99"))
        check("h2c: a slow stream does not hold up another on the same connection", fast < 1.5, out.stdout + out.stderr)

        # Server-speaks-first TCP, on a port that is not opaque (detect times out) and on an opaque one.
        def banner(port):
            # The time from connect to the banner, taken by the client itself (not the interpreter's start).
            r = net.run(net.client, [py, "-c", f"""
import socket, time
start = time.monotonic()
s = socket.create_connection(("{POD}", {port}), timeout=10)
line = b""
while not line.endswith(b"\\n"):
    line += s.recv(1)
took = time.monotonic() - start
s.sendall(b"ping\\n" * 1000)
got = b""
while len(got) < 5000:
    got += s.recv(65536)
print(line.decode().strip(), got == b"ping\\n" * 1000, round(took, 3))
"""])
            text, _, took = r.stdout.strip().rpartition(" ")
            try:
                return text, float(took)
            except ValueError:
                return r.stdout.strip() + r.stderr.strip(), float("nan")
        text, took = banner(5000)
        check("server-speaks-first TCP on a non-opaque port is proxied after the detect timeout, not dropped",
              text == "HELLO pod-banner True" and took >= 0.9, f"{text} after {took:.2f}s")
        text, took = banner(6379)
        check("an opaque port (6379) skips detection: the banner comes at once", text == "HELLO pod-redis True" and took < 0.9,
              f"{text} after {took:.2f}s")

        # Outbound: the app (uid 1000) calls the external namespace through 127.0.0.1:4140.
        out = pod.curl(net.pod, "-D", "-", f"http://{EXT}:9090/hello", uid=APP_UID)
        check("outbound HTTP/1.1 from the app goes through the proxy to the external service",
              "hello from external" in out.stdout, out.stdout + out.stderr)
        # Dual-stack: needle-init redirected IPv6 too, and the proxy listens on [::]:4143 and [::1]:4140.
        v6_pod, v6_ext = PodNetwork.POD_CLIENT_V6, PodNetwork.EXTERNAL_V6
        out = pod.curl(net.client, "-g", f"http://[{v6_pod}]:8082/hello")
        inbound_v6 = pod.metric(pod.metrics(), "request_total", direction="inbound", target_addr=f"[{v6_pod}]:8082")
        check("dual-stack: IPv6 inbound HTTP reaches the app through the proxy", "hello from app-v6" in out.stdout
              and inbound_v6 >= 1, out.stdout + out.stderr)
        out = pod.curl(net.pod, "-g", f"http://[{v6_ext}]:9095/hello", uid=APP_UID)
        outbound_v6 = pod.metric(pod.metrics(), "request_total", direction="outbound", target_addr=f"[{v6_ext}]:9095")
        check("dual-stack: IPv6 outbound HTTP from the app goes through the proxy", "hello from external-v6" in out.stdout
              and outbound_v6 >= 1, out.stdout + out.stderr)
        out = pod.curl(net.pod, "-o", "/dev/null", "-w", "%{http_code}", f"http://{EXT}:9099/closed", uid=APP_UID)
        check("outbound to a refused port is 502", out.stdout == "502", out.stdout + out.stderr)
        start = time.time()
        out = pod.curl(net.pod, "-o", "/dev/null", "-w", "%{http_code}", "http://10.202.0.99:9090/blackhole", uid=APP_UID)
        check("outbound to an address that never answers is 504 after the connect timeout",
              out.stdout == "504" and time.time() - start < 5, f"{out.stdout} {out.stderr} after {time.time() - start:.1f}s")
        # The address never answers, so a 504 in well under the 1 s connect timeout can only come from the
        # back-off. Its window is short after the first failure in a row (50-100 ms, UpstreamPoolState) and
        # doubles with each one, so on a loaded machine a request can miss it and wait out a real connect:
        # requests go back to back (at most six) until one fails fast. Every answer must be 504.
        out = net.run(net.pod, [py, "-c", """
import socket, time
def get():
    s = socket.create_connection(("10.202.0.99", 9090), timeout=10)
    s.sendall(b"GET /blackhole HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
    data = b""
    while chunk := s.recv(4096):
        data += chunk
    return data.split(b" ")[1].decode()
answers = []
for _ in range(6):
    start = time.monotonic(); status = get(); took = time.monotonic() - start
    answers.append((status, took))
    print(status, round(took, 3), flush=True)
    if took < 0.3:
        break
"""], uid=APP_UID, timeout=30)
        answers = [line.split() for line in out.stdout.splitlines()]
        answers = [(a[0], float(a[1])) for a in answers if len(a) == 2]
        backed_off = any(took < 0.3 for _, took in answers)
        check("right after a failed connect the destination backs off: the next request fails fast (504, no new connect wait)",
              answers and all(status == "504" for status, _ in answers) and backed_off,
              out.stdout + out.stderr)
        out = net.run(net.pod, [py, "-c", f"""
import socket
s = socket.create_connection(("{EXT}", 9091), timeout=5)
s.settimeout(5)
print(repr(s.recv(10)))
"""], uid=APP_UID)
        check("outbound opaque TCP to a refused port gets a clean close", out.stdout.strip() == "b''", out.stdout + out.stderr)

        # Metrics.
        text = pod.metrics()
        inbound = {"direction": "inbound", "target_addr": f"{POD}:8080", "tls": "false"}
        check("metrics: request_total counts inbound HTTP requests", pod.metric(text, "request_total", **inbound) >= 8,
              pod.metric(text, "request_total", **inbound))
        check("metrics: response_total carries status_code and classification",
              pod.metric(text, "response_total", status_code="404", classification="success", **inbound) >= 1
              and pod.metric(text, "response_total", status_code="503", classification="failure", **inbound) >= 1)
        check("metrics: response_latency_ms histogram with Linkerd's buckets",
              'response_latency_ms_bucket{' in text and 'le="50000"' in text and 'le="50000.0"' not in text)
        check("metrics: outbound requests are labelled by target",
              pod.metric(text, "request_total", direction="outbound", target_addr=f"{EXT}:9090") >= 1)
        check("metrics: tcp_open_total, tcp_close_total, bytes read and written",
              pod.metric(text, "tcp_open_total", **inbound) >= 5 and pod.metric(text, "tcp_read_bytes_total", **inbound) > 6 * 1024 * 1024
              and pod.metric(text, "tcp_write_bytes_total", **inbound) > 8 * 1024 * 1024)
        check("metrics: protocol detection by protocol, and timeouts",
              pod.metric(text, "protocol_detect_total", protocol="h2") >= 1 and pod.metric(text, "protocol_detect_timeout_total") >= 1)
        rss = pod.metric(text, "process_resident_memory_bytes")
        check("metrics: process_* from /proc", rss > 0 and pod.metric(text, "process_open_fds") > 0
              and pod.metric(text, "process_cpu_seconds_total") > 0 and pod.metric(text, "process_start_time_seconds") > 1e9)
        print(f"INFO proxy resident memory after the functional tests: {rss / 1048576:.1f} MiB (debug build)")

        # Admin endpoints.
        check("/ready and /live are 200", pod.curl(net.client, "-o", "/dev/null", "-w", "%{http_code}", f"http://{POD}:4191/ready").stdout == "200"
              and pod.curl(net.client, "-o", "/dev/null", "-w", "%{http_code}", f"http://{POD}:4191/live").stdout == "200")
        code = pod.curl(net.client, "-X", "POST", "-o", "/dev/null", "-w", "%{http_code}", f"http://{POD}:4191/shutdown").stdout
        check("POST /shutdown from outside the pod is refused", code == "403", code)

        # No descriptor left behind: many connections come and go.
        for _ in range(3):
            pod.curl(net.client, "-o", "/dev/null", *[f"http://{POD}:8080/hello"] * 20)
            banner(6379)
        # The proxy's own gauge (summed over every target) first, then its descriptors: no fixed sleep.
        open_now = wait_for(lambda: pod.metric(pod.metrics(), "tcp_open_connections"), 10, done=lambda n: n == 0)
        fds = wait_for(pod.open_fds, 5, done=lambda n: n <= baseline_fds + 4)
        check("after clients disconnect no connection or descriptor is left open",
              open_now == 0 and fds <= baseline_fds + 4, f"open connections {open_now}, fds {baseline_fds} -> {fds}")

        # Graceful shutdown: an in-flight request finishes. SIGTERM goes once the proxy has counted the request
        # (request_total counts it when its upstream connection is known, i.e. it is on its way to the app).
        before = pod.metric(pod.metrics(), "request_total", **inbound)
        slow = subprocess.Popen(net.command(net.client, ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                                         f"http://{POD}:8080/slow?ms=2000"]), stdout=subprocess.PIPE, text=True)
        wait_for(lambda: pod.metric(pod.metrics(), "request_total", **inbound), 5, 0.05, done=lambda n: n > before)
        os.kill(pod.proxy.pid, signal.SIGTERM)
        code = slow.communicate(timeout=15)[0]
        check("SIGTERM: a request in flight completes with 200", code == "200", code)
        try:
            exit_code = pod.proxy.wait(timeout=15)
        except subprocess.TimeoutExpired:
            exit_code = "still running"
        check("SIGTERM: the proxy exits 0 after draining", exit_code == 0, exit_code)
        log = pod.proxy.stdout.read() if pod.proxy.stdout else ""
        check("the proxy logged ready, draining and stopped", all(w in log for w in ("ready", "draining", "stopped")), log[-500:])

    failed = results.count(False)
    print(f"needle-proxy e2e: {results.count(True)} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
