#!/usr/bin/env python3
"""End-to-end checks of needle-injector: real TLS on loopback, certificates made by openssl (an
independent implementation), bad input per DESIGN §4, slow clients, certificate reload through a
Kubernetes-style ..data symlink swap, the connection cap and graceful shutdown.

Prints one PASS/FAIL line per check and exits non-zero if any failed. Every server it starts is
killed at the end, even after a failure; every loop is bounded in count and time."""

import argparse, base64, http.client, json, os, re, shutil, signal, socket, ssl, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "Webhook", "examples")
results = []
processes = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("PASS " if ok else "FAIL ") + name + ("" if ok or not detail else ": " + str(detail)), flush=True)


def wait_for(read, seconds, interval=0.1, done=bool):
    """The one polling loop of the e2e checks: calls read() until done(value) holds or `seconds` have passed,
    and returns the last value read. With the default `done` that is the first truthy value, or the last
    falsy one when time ran out, so `if wait_for(lambda: ..., 10)` reads as a bounded wait on a condition.

    read() is called at once, then every `interval` seconds, and once more at the deadline: no sleep runs
    past it, so a wait takes at most `seconds` plus one read(). An exception from read() ends the wait
    (e.g. a server that exited). Keep `interval` as the third positional argument: the benchmarks pass it so."""
    deadline = time.monotonic() + seconds
    while True:
        value = read()
        if done(value):
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            return value
        time.sleep(min(interval, left))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60, **kw)


def make_ca(directory):
    key, crt = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.pem")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
         "-out", crt, "-days", "2", "-subj", "/CN=e2e test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign"])
    return key, crt


def issue(directory, ca_key, ca_crt, name):
    key, csr, crt = (os.path.join(directory, f"{name}.{ext}") for ext in ("key", "csr", "crt"))
    ext = os.path.join(directory, f"{name}.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
         "-subj", f"/CN={name}"])
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
         "-days", "1", "-extfile", ext])
    return crt, key


def publish_secret(secret_dir, crt, key, version):
    """Lays files out like a kubelet-mounted Secret and swaps ..data atomically."""
    data_dir = os.path.join(secret_dir, f"..{version}")
    os.makedirs(data_dir)
    shutil.copy(crt, os.path.join(data_dir, "tls.crt"))
    shutil.copy(key, os.path.join(data_dir, "tls.key"))
    tmp_link = os.path.join(secret_dir, "..data_tmp")
    os.symlink(f"..{version}", tmp_link)
    os.replace(tmp_link, os.path.join(secret_dir, "..data"))
    for f in ("tls.crt", "tls.key"):
        link = os.path.join(secret_dir, f)
        if not os.path.islink(link):
            os.symlink(os.path.join("..data", f), link)


class Injector:
    def __init__(self, binary, args, log_path):
        self.port, self.admin = free_port(), free_port()
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([binary, "--listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin}",
                                      *args], stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)
        processes.append(self.proc)

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"injector exited with {self.proc.returncode}; see {log_path}")
            try:
                return self.admin_get("/ready")[0] == 200
            except OSError:
                return False

        if not wait_for(ready, 20):
            raise RuntimeError("injector did not become ready in 20 s")

    def admin_get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin, timeout=5)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read().decode()
        finally:
            conn.close()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def tls_context(ca):
    ctx = ssl.create_default_context(cafile=ca)
    return ctx


def post(inj, ctx, body, content_type="application/json", method="POST", path="/inject", conn=None):
    own = conn is None
    conn = conn or http.client.HTTPSConnection("localhost", inj.port, context=ctx, timeout=10)
    headers = {"Content-Type": content_type} if content_type else {}
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    data = r.read()
    if own:
        conn.close()
    return r.status, data


def read_example(name):
    with open(os.path.join(EXAMPLES, name), "rb") as f:
        return f.read()


def served_certificate(port):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.getpeercert(binary_form=True)


def pem_to_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def closed_within(sock, seconds):
    """True if the peer closes the connection within `seconds`."""
    sock.settimeout(seconds)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except (socket.timeout, TimeoutError):
        return False
    except (ConnectionResetError, ssl.SSLError, OSError):
        return True


def dev_mode(binary, work):
    dev_dir = os.path.join(work, "dev")
    inj = Injector(binary, ["--dev", "--dev-directory", dev_dir], os.path.join(work, "dev.log"))
    try:
        ca = os.path.join(dev_dir, "ca.pem")
        out = subprocess.run(["curl", "-sS", "--cacert", ca, "-H", "Content-Type: application/json",
                              "--data", "@Webhook/examples/pod.json", f"https://localhost:{inj.port}/inject"],
                             capture_output=True, text=True, timeout=30, cwd=ROOT)
        ok = out.returncode == 0 and json.loads(out.stdout)["response"].get("patchType") == "JSONPatch"
        check("dev mode: README curl line gets a patch, verified against the printed CA", ok, out.stderr or out.stdout[:200])
        verify = subprocess.run(["openssl", "verify", "-CAfile", ca, os.path.join(dev_dir, "tls.crt")],
                                capture_output=True, text=True, timeout=30)
        check("dev mode: openssl verifies the dev serving certificate against the dev CA", verify.returncode == 0, verify.stderr)
    finally:
        inj.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--injector", required=True)
    args = parser.parse_args()
    binary = os.path.abspath(args.injector)
    work = tempfile.mkdtemp(prefix="needle-e2e-")
    try:
        dev_mode(binary, work)
        ca_key, ca = make_ca(work)
        crt1, key1 = issue(work, ca_key, ca, "serving-1")
        crt2, key2 = issue(work, ca_key, ca, "serving-2")
        secret = os.path.join(work, "secret")
        os.makedirs(secret)
        publish_secret(secret, crt1, key1, "v1")
        namespaces = os.path.join(ROOT, "Webhook", "dev", "namespaces.yaml")
        inj = Injector(binary, ["--tls-cert", os.path.join(secret, "tls.crt"), "--tls-key", os.path.join(secret, "tls.key"),
                                "--namespaces", namespaces, "--header-timeout", "2", "--body-timeout", "2",
                                "--certificate-check-interval", "1", "--max-connections", "8", "--shutdown-grace-period", "10"],
                       os.path.join(work, "injector.log"))
        ctx = tls_context(ca)
        try:
            exercise(inj, ctx, ca, secret, (crt2, key2))
        finally:
            inj.stop()
        with open(os.path.join(work, "injector.log")) as f:
            log = f.read()
        check("one log line per admission with namespace, pod, decision, reason and duration",
              all(k in log for k in ("admission", "namespace=demo", "decision=injected", "reason=", "duration_ms=")), log[-400:])
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)
    failed = results.count(False)
    print(f"webhook e2e: {results.count(True)} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def exercise(inj, ctx, ca, secret, second_pair):
    pod = read_example("pod.json")
    status, body = post(inj, ctx, pod)
    response = json.loads(body) if status == 200 else {}
    r = response.get("response", {})
    uid = json.loads(pod)["request"]["uid"]
    check("POST /inject answers 200 with the uid echoed and a JSONPatch", status == 200 and r.get("uid") == uid
          and r.get("patchType") == "JSONPatch" and base64.b64decode(r.get("patch", "")).startswith(b"["), body[:200])

    status, body = post(inj, ctx, read_example("pod-v1beta1.json"))
    check("a v1beta1 review is answered in v1beta1", status == 200 and json.loads(body)["apiVersion"] == "admission.k8s.io/v1beta1")

    status, body = post(inj, ctx, read_example("pod-opt-out.json"))
    r = json.loads(body)["response"] if status == 200 else {}
    check("an opted-out pod gets no patch and no patchType", status == 200 and "patch" not in r and "patchType" not in r)

    status, body = post(inj, ctx, read_example("pod-bad-config.json"))
    r = json.loads(body)["response"] if status == 200 else {}
    check("invalid config annotations come back as warnings", status == 200 and len(r.get("warnings", [])) >= 10)

    # Bad input, DESIGN §4.
    check("GET /inject is 405", post(inj, ctx, None, method="GET")[0] == 405)
    check("text/plain is 415", post(inj, ctx, pod, content_type="text/plain")[0] == 415)
    check("no Content-Type is 415", post(inj, ctx, pod, content_type=None)[0] == 415)
    check("empty body is 400", post(inj, ctx, b"")[0] == 400)
    check("malformed JSON is 400", post(inj, ctx, b"{\"apiVersion\": ")[0] == 400)
    no_uid = json.loads(pod)
    del no_uid["request"]["uid"]
    check("a review without request.uid is 400", post(inj, ctx, json.dumps(no_uid).encode())[0] == 400)
    check("a JSON document that is not an AdmissionReview is 400", post(inj, ctx, b"[1,2,3]")[0] == 400)
    check("unknown path is 404", post(inj, ctx, pod, path="/mutate")[0] == 404)
    big = b"{\"pad\":\"" + b"x" * (5 * 1024 * 1024) + b"\"}"
    try:
        status = post(inj, ctx, big)[0]
    except (ConnectionResetError, BrokenPipeError, ssl.SSLError) as error:
        status = f"connection error {error}"
    check("a 5 MiB body is 413", status == 413, status)
    unknown_ns = json.loads(pod)
    unknown_ns["request"]["namespace"] = "no-such-namespace"
    unknown_ns["request"]["object"]["metadata"]["namespace"] = "no-such-namespace"
    check("a namespace that cannot be looked up is 500", post(inj, ctx, json.dumps(unknown_ns).encode())[0] == 500)

    # Keep-alive: several reviews over one TLS connection.
    conn = http.client.HTTPSConnection("localhost", inj.port, context=ctx, timeout=10)
    statuses = [post(inj, ctx, pod, conn=conn)[0] for _ in range(5)]
    first_sock = conn.sock
    statuses.append(post(inj, ctx, pod, conn=conn)[0])
    check("five reviews reuse one keep-alive connection", statuses == [200] * 6 and conn.sock is first_sock)
    conn.close()

    # Slow clients hold connections; the webhook keeps serving and cuts them off.
    slow = []
    for _ in range(3):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", inj.port), timeout=5), server_hostname="localhost")
        s.sendall(b"POST /inject HTTP/1.1\r\nHost: localhost\r\n")  # never finishes the head
        slow.append(s)
    start = time.time()
    status = post(inj, ctx, pod)[0]
    check("a review is served while slow clients hold connections", status == 200 and time.time() - start < 2)
    check("a client that never finishes its head is cut off by the header timeout", all(closed_within(s, 5) for s in slow))
    for s in slow:
        s.close()
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", inj.port), timeout=5), server_hostname="localhost")
    s.sendall(b"POST /inject HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"a\":")
    s.settimeout(6)
    reply = b""
    try:
        while b"\r\n\r\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    except (socket.timeout, TimeoutError, ssl.SSLError, OSError):
        pass
    check("a body that stalls gets 408", reply.startswith(b"HTTP/1.1 408"), reply[:60])
    s.close()
    raw = socket.create_connection(("127.0.0.1", inj.port), timeout=5)
    raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(2000))
    closed_within(raw, 5)
    raw.close()
    check("plain HTTP and garbage on the TLS port do not hurt the server", post(inj, ctx, pod)[0] == 200)

    # Connection cap: 8 connections; a 9th is refused while they are held.
    # Each step waits on the injector's own gauge, not a fixed sleep: the previous check's connection may
    # still be open on the server (its FIN not yet read) when the held ones arrive, and then one held
    # connection is rightly refused; and the held ones never start TLS, so the header timeout (2 s) closes
    # them, and the 9th must be tried while all 8 are counted.
    def open_connections():
        match = re.search(r"^needle_injector_open_connections (\d+)", inj.admin_get("/metrics")[1], re.M)
        return int(match.group(1)) if match else None

    def open_connections_reach(expected, seconds):
        return wait_for(open_connections, seconds, 0.02, done=lambda counted: counted == expected)

    idle = open_connections_reach(0, 5)
    check("before the connection-cap check no webhook connection is open", idle == 0, idle)
    held = [socket.create_connection(("127.0.0.1", inj.port), timeout=5) for _ in range(8)]
    counted = open_connections_reach(8, 1.5)
    check("the injector counts the 8 held connections", counted == 8, counted)
    try:
        extra_status = post(inj, ctx, pod)[0]
    except (ConnectionResetError, ssl.SSLError, OSError, http.client.HTTPException):
        extra_status = "refused"
    for h in held:
        h.close()
    released = open_connections_reach(0, 5)
    check("over the connection cap a new connection is refused", extra_status == "refused", extra_status)
    check("after held connections close, reviews are served again", post(inj, ctx, pod)[0] == 200,
          f"open connections still counted: {released}")

    # Admin endpoints.
    status, metrics = inj.admin_get("/metrics")
    check("/metrics counts admissions by outcome and reason, errors by status and the certificate expiry",
          status == 200 and 'needle_injector_admissions_total{outcome="injected",reason="namespace annotation enabled"}' in metrics
          and 'needle_injector_http_errors_total{status="415"}' in metrics
          and "needle_injector_serving_certificate_expiry_timestamp_seconds" in metrics
          and "needle_injector_admission_duration_seconds_bucket" in metrics)
    check("/ready and /live answer 200", inj.admin_get("/ready")[0] == 200 and inj.admin_get("/live")[0] == 200)

    # Certificate reload through a ..data symlink swap, and a broken swap that must not take effect.
    before = served_certificate(inj.port)
    check("the served certificate is the mounted one", before == pem_to_der(os.path.join(secret, "tls.crt")))
    publish_secret(secret, *second_pair, "v2")
    expected = pem_to_der(second_pair[0])
    after = wait_for(lambda: served_certificate(inj.port), 15, 0.5, done=lambda served: served == expected)
    check("a replaced certificate is served within 15 s, without restart", after == expected and inj.proc.poll() is None)
    broken = os.path.join(os.path.dirname(secret), "broken")
    os.makedirs(broken)
    with open(os.path.join(broken, "tls.crt"), "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    publish_secret(secret, os.path.join(broken, "tls.crt"), second_pair[1], "v3")
    # Wait on the injector's own count of the rejected load (checked every 1 s), not a fixed sleep.
    rejected = wait_for(lambda: 'needle_injector_certificate_loads_total{result="failure"}' in inj.admin_get("/metrics")[1], 15, 0.2)
    check("a broken certificate update is rejected and the previous one keeps serving",
          rejected and served_certificate(inj.port) == expected and post(inj, ctx, pod)[0] == 200)

    # Graceful shutdown: a review in flight when SIGTERM arrives still gets its answer.
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", inj.port), timeout=5), server_hostname="localhost")
    half = len(pod) // 2
    s.sendall(b"POST /inject HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
              + f"Content-Length: {len(pod)}\r\n\r\n".encode() + pod[:half])
    time.sleep(0.2)
    inj.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    s.sendall(pod[half:])
    s.settimeout(5)
    reply = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    except (socket.timeout, TimeoutError, ssl.SSLError, OSError):
        pass
    s.close()
    check("SIGTERM lets a review in flight finish with 200", reply.startswith(b"HTTP/1.1 200"), reply[:80])
    try:
        code = inj.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        code = "still running"
    check("after SIGTERM the injector exits 0", code == 0, code)


if __name__ == "__main__":
    main()
