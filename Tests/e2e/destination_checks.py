"""needle-controller's destination service end to end (DESIGN §8), run by identity_e2e.py against the same
controller: the stand-in API serves a Service with two meshed pods and one unmeshed behind it; a client with
a workload certificate asks over mutual TLS and reads the streamed answer; an EndpointSlice change arrives
within 5 s; pod IPs and unknown addresses are answered; a client without a certificate is refused."""

import os, socket, ssl, subprocess, time

from webhook_e2e import check, run

SERVICE_PATH, SLICE_PATH, POD_PATH = "/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices", "/api/v1/pods"
WEB_NAME = "web.shop.serviceaccount.identity.needle.cluster.local"


def populate(cluster):
    cluster.put(SERVICE_PATH, {"metadata": {"name": "web", "namespace": "shop"},
                               "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    cluster.put(SLICE_PATH, web_slice(["10.0.0.1", "10.0.0.2", "10.0.0.3"]))
    for name, ip, meshed in (("web-1", "10.0.0.1", True), ("web-2", "10.0.0.2", True), ("legacy-1", "10.0.0.3", False)):
        containers = [{"name": "app"}] + ([{"name": "needle-proxy", "env": [{"name": "NEEDLE_PROXY_OPAQUE_PORTS", "value": "5432"}]}] if meshed else [])
        cluster.put(POD_PATH, {"metadata": {"name": name, "namespace": "shop"},
                               "spec": {"serviceAccountName": "web" if meshed else "default", "containers": containers},
                               "status": {"phase": "Running", "podIP": ip}})


def web_slice(ips):
    pods = {"10.0.0.1": "web-1", "10.0.0.2": "web-2", "10.0.0.3": "legacy-1"}
    return {"metadata": {"name": "web-abc", "namespace": "shop", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}, "targetRef": {"kind": "Pod", "name": pods[ip]}} for ip in ips]}


def workload_certificate(work, issuer_crt, issuer_key):
    """A client certificate for shop/web signed by the issuer, as the controller would issue it; the chain file."""
    key, csr, crt, ext, chain = (os.path.join(work, f"dest-client.{e}") for e in ("key", "csr", "crt", "ext", "chain"))
    with open(ext, "w") as f:
        f.write(f"subjectAltName=DNS:{WEB_NAME},URI:spiffe://cluster.local/ns/shop/sa/web\nextendedKeyUsage=clientAuth,serverAuth\n")
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr, "-subj", "/"])
    run(["openssl", "x509", "-req", "-in", csr, "-CA", issuer_crt, "-CAkey", issuer_key, "-CAcreateserial", "-out", crt, "-days", "1",
         "-extfile", ext])
    with open(chain, "w") as out:
        out.write(open(crt).read() + open(issuer_crt).read())
    return chain, key


class Stream:
    """One destination lookup: sends the request, then reads the chunked body line by line."""

    def __init__(self, port, anchor, server_name, target, chain=None, key=None):
        context = ssl.create_default_context(cafile=anchor)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        if chain:
            context.load_cert_chain(chain, key)
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = context.wrap_socket(raw, server_hostname=server_name)
        self.sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {server_name}\r\n\r\n".encode())
        self.buffer = b""
        self.status = self._head()
        self.text = ""

    def _read(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError
        self.buffer += data

    def _head(self):
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        return int(head.split(b" ", 2)[1])

    def lines_until(self, predicate, seconds):
        """Decodes chunks until predicate(all text so far) or the deadline; returns the text."""
        deadline = time.time() + seconds
        while not predicate(self.text) and time.time() < deadline:
            while b"\r\n" in self.buffer:
                size_line, rest = self.buffer.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                if len(rest) < size + 2:
                    break
                self.text += rest[:size].decode()
                self.buffer = rest[size + 2:]
                if size == 0:
                    return self.text
            if predicate(self.text):
                break
            self.sock.settimeout(max(0.1, deadline - time.time()))
            try:
                self._read()
            except (socket.timeout, EOFError):
                break
        return self.text

    def close(self):
        self.sock.close()


def destinations(port, anchor, server_name, cluster, work, issuer_crt, issuer_key):
    populate(cluster)
    # A client that connects and never starts TLS must not hold a connection slot (checked at the end).
    silent = socket.create_connection(("127.0.0.1", port), timeout=10)
    silent_since = time.time()
    chain, key = workload_certificate(work, issuer_crt, issuer_key)
    stream = Stream(port, anchor, server_name, "/v1/destinations?address=10.96.0.10:80", chain, key)
    try:
        text = stream.lines_until(lambda t: "sync\n" in t, 20)
        lines = text.splitlines()
        check("a meshed client asks over mutual TLS and gets the Service's ready endpoints, meshed ones with their TLS name",
              stream.status == 200 and lines == [
                  "reset",
                  f"add 10.0.0.1:8080 identity={WEB_NAME} opaque=false namespace=shop service=web pod=web-1",
                  f"add 10.0.0.2:8080 identity={WEB_NAME} opaque=false namespace=shop service=web pod=web-2",
                  "add 10.0.0.3:8080 opaque=false namespace=shop service=web pod=legacy-1",
                  "sync"], f"{stream.status} {text!r}")
        started = time.time()
        cluster.put(SLICE_PATH, web_slice(["10.0.0.2", "10.0.0.3"]))
        text = stream.lines_until(lambda t: t.count("sync\n") >= 2, 10)
        took = time.time() - started
        check("removing an endpoint from the EndpointSlice reaches the open lookup within 5 s, as a remove",
              text.splitlines()[5:] == ["remove 10.0.0.1:8080", "sync"] and took < 5, f"{text!r} after {took:.2f}s")
    finally:
        stream.close()
    pod = Stream(port, anchor, server_name, "/v1/destinations?address=10.0.0.2:5432", chain, key)
    text = pod.lines_until(lambda t: "sync\n" in t, 10)
    pod.close()
    check("a pod IP is answered with that pod, its identity and its opaque port",
          text.splitlines() == ["reset", f"add 10.0.0.2:5432 identity={WEB_NAME} opaque=true namespace=shop pod=web-2", "sync"], repr(text))
    unknown = Stream(port, anchor, server_name, "/v1/destinations?address=192.0.2.7:443", chain, key)
    text = unknown.lines_until(lambda t: "sync\n" in t, 10)
    unknown.close()
    check("an address no Service or pod has is not known", text.splitlines() == ["reset", "not-known", "sync"], repr(text))
    # Proxies multiplex their lookups as HTTP/2 streams (ALPN h2): two lookups at once on one curl connection.
    both = subprocess.run(["curl", "-sS", "--http2", "--parallel", "-N", "--max-time", "3", "--cacert", anchor, "--cert", chain,
                           "--key", key, "--resolve", f"{server_name}:{port}:127.0.0.1",
                           "-w", "\nversion=%{http_version} connects=%{num_connects}\n",
                           f"https://{server_name}:{port}/v1/destinations?address=10.0.0.2:5432",
                           f"https://{server_name}:{port}/v1/destinations?address=192.0.2.7:443"],
                          capture_output=True, text=True, timeout=30)
    connects = sum(int(part.split("=")[1]) for part in both.stdout.split() if part.startswith("connects="))
    check("over HTTP/2 (ALPN h2) two lookups are streams of one connection, answered as over HTTP/1.1",
          both.stdout.count("version=2") == 2 and connects == 1 and "add 10.0.0.2:5432" in both.stdout and "not-known" in both.stdout,
          both.stdout[-400:] + both.stderr[-300:])
    bad = Stream(port, anchor, server_name, "/v1/destinations?address=web.shop:80", chain, key)
    check("a lookup that is not IP:PORT is refused with 400", bad.status == 400, bad.status)
    bad.close()
    try:
        anonymous = Stream(port, anchor, server_name, "/v1/destinations?address=10.96.0.10:80")
        answered = anonymous.lines_until(lambda t: "sync" in t, 3)
        refused = "sync" not in answered
        anonymous.close()
    except (ssl.SSLError, OSError, EOFError, ValueError):
        refused = True
    check("a client without a certificate from the trust anchors gets no answer", refused)
    try:
        silent.settimeout(max(0.1, silent_since + 15 - time.time()))
        closed = silent.recv(1) == b""
    except ConnectionResetError:
        closed = True
    except OSError:
        closed = False
    waited = time.time() - silent_since
    silent.close()
    check("a connection that never starts its TLS handshake is closed after the header timeout (10 s)",
          closed and 9 <= waited <= 14, f"closed={closed} after {waited:.1f}s")
