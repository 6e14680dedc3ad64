#!/usr/bin/env python3
"""needle-proxy under hostile clients and misbehaving apps, end to end: the pod from netns.py with
needle-init applied and the proxy running as uid 2102. Raw sockets (and the `h2` library for HTTP/2) so
the bytes on the wire are exactly the ones meant.

Groups: 1xx responses (Expect: 100-continue, 103 Early Hints); request smuggling shapes (400/431, and the
app never sees them); an app that closes idle keep-alive connections sooner than the proxy's pool; an h2c
app restarted under a live client connection, and h2c garbage; slowloris; descriptor exhaustion (a second
pod whose proxy has 128 descriptors); draining with HTTP/2 and HTTP/1.1 in flight.

Client sockets are made in the test process itself: `netns()` switches the calling thread into a
namespace just long enough to create a socket, which stays in that namespace. Every socket has a timeout,
every loop a bound in count and time, and a watchdog ends the run after SUITE_LIMIT seconds; namespaces
and processes are removed on the way out whatever happened. Needs root: without it, prints SKIP, exits 0."""

import argparse, concurrent.futures, contextlib, ctypes, os, random, resource, select, signal, socket, struct, subprocess, \
    sys, threading, time, traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netns import PodNetwork, have_root  # noqa: E402
from webhook_e2e import wait_for  # noqa: E402

try:
    import h2.config, h2.connection, h2.events, h2.exceptions
except ImportError:  # reported after the root check, so a SKIP stays a SKIP
    h2 = None

HERE = os.path.dirname(os.path.abspath(__file__))
TOOLS = os.path.join(HERE, "tools")
POD, EXT = PodNetwork.POD_CLIENT_V4, PodNetwork.EXTERNAL_V4
HTTP_PORT, H2C_PORT, KEEPALIVE_PORT, OPAQUE_PORT = 8080, 8081, 8082, 6379  # in the pod
EXT_HTTP_PORT, EXT_KEEPALIVE_PORT = 9090, 9092  # in the external namespace
PROXY_UID, APP_UID = 2102, 1000
SUITE_LIMIT = 300
results = []
print_lock = threading.Lock()


def check(name, ok, detail=""):
    with print_lock:
        results.append(bool(ok))
        print(("PASS " if ok else "FAIL ") + name + ("" if ok or not detail else ": " + str(detail)[:600]), flush=True)


def info(text):
    with print_lock:
        print("INFO " + text, flush=True)


class SuiteStopped(BaseException):
    """Raised by the watchdog or on SIGTERM; a BaseException so no group's `except Exception` swallows it
    and the namespaces and processes are still cleaned up on the way out."""


# --- sockets in other namespaces -------------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def netns(name):
    """Moves the calling thread (only) into network namespace `name` and back."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns into {name}")
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:
                # A thread left in the wrong namespace would send the rest of the run astray.
                os.write(2, f"setns back failed: errno {ctypes.get_errno()}\n".encode())
                os._exit(3)
    finally:
        os.close(own)
        os.close(target)


def connect(ns, host, port, timeout=5.0):
    with netns(ns):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def recv_until(sock, done, timeout, data=b""):
    """Reads until done(data), EOF, a reset or the timeout. Returns (data, "done"|"eof"|"reset"|"timeout")."""
    end = time.monotonic() + timeout
    while not done(data):
        left = end - time.monotonic()
        if left <= 0:
            return data, "timeout"
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, "timeout"
        except (ConnectionResetError, BrokenPipeError):
            return data, "reset"
        if not chunk:
            return data, "eof"
        data += chunk
    return data, "done"


def wait_closed(sock, timeout):
    """"eof" or "reset" when the peer closes within timeout (bytes read meanwhile are dropped), else "timeout"."""
    return recv_until(sock, lambda d: False, timeout)[1]


# --- HTTP/1.1 on the wire ----------------------------------------------------------------------------------

class Response:
    def __init__(self, status_line, code, headers, body):
        self.status_line, self.code, self.headers, self.body = status_line, code, headers, body

    def __repr__(self):
        return f"<{self.status_line} {dict(self.headers)} {self.body[:80]!r}>"


def dechunk(data):
    """(body, rest) of a chunked body at the start of data, or (None, data) while incomplete."""
    body, pos = b"", 0
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return None, data
        size = int(data[pos:eol].split(b";")[0], 16)
        pos = eol + 2
        if size == 0:
            end = data.find(b"\r\n\r\n", pos - 2)
            return (None, data) if end < 0 else (body, data[end + 4:])
        if len(data) < pos + size + 2:
            return None, data
        body += data[pos:pos + size]
        pos += size + 2


def parse_responses(data, eof=False, through_final=False):
    """The complete responses (1xx included) at the start of data, and the bytes after them; with
    through_final, stops after the first final (non-1xx) response."""
    out = []
    while not (through_final and out and out[-1].code >= 200):
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return out, data
        lines = data[:end].decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            return out, data
        code = int(parts[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        rest = data[end + 4:]
        if 100 <= code < 200 or code in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body, rest = dechunk(rest)
            if body is None:
                return out, data
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if len(rest) < length:
                return out, data
            body, rest = rest[:length], rest[length:]
        elif eof:
            body, rest = rest, b""
        else:
            return out, data
        out.append(Response(lines[0], code, headers, body))
        data = rest
    return out, data


def has_final(data):
    return any(r.code >= 200 for r in parse_responses(data)[0])


class Raw:
    """One client connection carrying HTTP/1.1 requests written byte for byte."""

    def __init__(self, ns, host, port, timeout=5.0):
        self.sock = connect(ns, host, port, timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def response(self, timeout=10.0):
        """Every response up to and including the next final one, and how reading ended."""
        data, state = recv_until(self.sock, has_final, timeout, self.buf)
        responses, self.buf = parse_responses(data, eof=state in ("eof", "reset"), through_final=True)
        return responses, state

    def close(self):
        self.sock.close()


def http(ns, host, port, method, path, body=b"", timeout=10.0):
    """One request on a fresh connection: (final Response or None, state)."""
    try:
        conn = Raw(ns, host, port, min(timeout, 5.0))
    except OSError as error:
        return None, f"connect: {error}"
    try:
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        if body or method == "POST":
            head += f"Content-Length: {len(body)}\r\n"
        conn.send(head.encode() + b"\r\n" + body)
        responses, state = conn.response(timeout)
        final = [r for r in responses if r.code >= 200]
        return (final[0] if final else None), state
    except OSError as error:
        return None, f"error: {error}"
    finally:
        conn.close()


# --- processes ---------------------------------------------------------------------------------------------

def spawn(net, ns, argv, log_name, uid=None, ready_line=None, timeout=10.0):
    """Starts a tracked process with its output in a file in the scratch dir (a pipe nobody reads could fill
    and stall it); with ready_line, waits until that line appears."""
    log_path = os.path.join(net.scratch, log_name)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(net.command(ns, argv, uid), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    net.processes.append(proc)
    proc.log_path = log_path
    if ready_line is not None:
        def state():
            with open(log_path, "rb") as f:
                if ready_line.encode() + b"\n" in f.read():
                    return "ready"
            return "exited" if proc.poll() is not None else None

        if wait_for(state, timeout, 0.05) == "ready":
            return proc
        raise RuntimeError(f"{argv} did not print {ready_line!r} within {timeout} s: {read_log(proc)[-300:]!r}")
    return proc


def read_log(proc, offset=0):
    with open(proc.log_path, "rb") as f:
        f.seek(offset)
        return f.read().decode("utf-8", "replace")


def matching_lines(proc, offset, words, keep=3):
    """How many log lines after offset mention one of words (streamed: a spinning proxy writes megabytes),
    and the first few of them."""
    count, sample = 0, []
    with open(proc.log_path, "rb") as f:
        f.seek(offset)
        for raw in f:
            line = raw.decode("utf-8", "replace").rstrip()
            if any(w in line.lower() for w in words):
                count += 1
                if len(sample) < keep:
                    sample.append(line[:200])
    return count, sample


def stop(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=5)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


class Pod:
    """A PodNetwork with needle-init applied and a proxy running as uid 2102."""

    def __init__(self, net, proxy_binary, init_binary):
        self.net = net
        self.proxy_binary = net.install(proxy_binary)
        self.init = net.install(init_binary)
        self.py = sys.executable
        self.tools = {}
        self.proxy = None

    def tool(self, name):
        if name not in self.tools:
            self.tools[name] = self.net.install(os.path.join(TOOLS, name))
        return self.tools[name]

    def app(self, ns, name, *args, log_name):
        return spawn(self.net, ns, [self.py, self.tool(name), *map(str, args)], log_name, ready_line="ready")

    def apply_init(self):
        applied = self.net.run(self.net.pod, [self.init, "--proxy-uid", str(PROXY_UID), "--inbound-ports-to-ignore", "4191"])
        if applied.returncode != 0:
            raise RuntimeError(f"needle-init failed: {applied.stderr}")

    def start_proxy(self, env, nofile=None, log_name="proxy.log"):
        full = {"PATH": "/usr/bin:/bin", "NEEDLE_PROXY_INBOUND_IPS": f"{POD},{PodNetwork.POD_EXTERNAL_V4}",
                "NEEDLE_POD_NAME": "e2e", "NEEDLE_POD_NAMESPACE": "default"}
        full.update(env)
        argv = ["env", "-i"] + [f"{k}={v}" for k, v in full.items()] + [self.proxy_binary]
        if nofile is not None:
            argv = ["prlimit", f"--nofile={nofile}:{nofile}", "--"] + argv  # prlimit execs: the pid stays the proxy's
        self.proxy = spawn(self.net, self.net.pod, argv, log_name, uid=PROXY_UID)
        waited = self.net.run(self.net.pod, ["env", "-i", self.proxy_binary, "await", "--timeout", "15s"], uid=PROXY_UID, timeout=30)
        if waited.returncode != 0:
            raise RuntimeError(f"proxy not ready: {waited.stderr} {read_log(self.proxy)[-500:]}")
        if os.readlink(f"/proc/{self.proxy.pid}/exe") != self.proxy_binary:
            raise RuntimeError("the spawned pid is not the proxy's (a wrapper forked?)")

    def curl(self, ns, *args, uid=None, timeout=30):
        return self.net.run(ns, ["curl", "-sS", "--max-time", "20", *args], uid=uid, timeout=timeout)


def directions(net):
    """(label, client namespace, host, port of the HTTP app, namespace and port to ask the app directly)."""
    return [("inbound", net.client, POD, HTTP_PORT, net.pod, HTTP_PORT),
            ("outbound", net.pod, EXT, EXT_HTTP_PORT, net.external, EXT_HTTP_PORT)]


def seen_by_app(ns, port):
    """The request targets the hostile app recorded, asked on its loopback (not through the proxy)."""
    response, state = http(ns, "127.0.0.1", port, "GET", "/seen")
    if response is None or response.code != 200:
        raise RuntimeError(f"cannot read the app's /seen: {state}")
    return response.body.decode().split()


# --- 1. 1xx responses --------------------------------------------------------------------------------------

def informational(pod):
    net = pod.net
    size = 2 * 1024 * 1024
    upload = os.path.join(net.scratch, "2MiB.bin")
    with open(upload, "wb") as f:
        f.write(b"x" * size)
    for label, ns, host, port, _, _ in directions(net):
        conn = Raw(ns, host, port)
        try:
            conn.send(f"POST /upload HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {size}\r\n"
                      "Expect: 100-continue\r\n\r\n".encode())
            start = time.monotonic()
            conn.buf, state = recv_until(conn.sock, lambda d: b"\r\n\r\n" in d, 1.0)
            took = time.monotonic() - start
            check(f"{label} Expect: 100-continue: the app's 100 Continue reaches the client within 1 s",
                  conn.buf.startswith(b"HTTP/1.1 100 "), f"{state} after {took:.2f}s: {conn.buf[:200]!r}")
            # RFC 9110 §10.1.1: a client that waited long enough sends the body anyway.
            conn.send(b"x" * size)
            responses, state = conn.response(10)
            final = [r for r in responses if r.code >= 200]
            check(f"{label} Expect: 100-continue: the 2 MiB body then gets 200 with the echoed length",
                  final and final[0].code == 200 and final[0].body == f"received={size}\n".encode(), f"{state}: {responses}")
        except OSError as error:
            check(f"{label} Expect: 100-continue exchange", False, repr(error))
        finally:
            conn.close()

        start = time.monotonic()
        out = pod.curl(ns, "--expect100-timeout", "5", "-H", "Expect: 100-continue", "--data-binary", f"@{upload}",
                       "-o", "/dev/null", "-w", "%{http_code}", f"http://{host}:{port}/upload",
                       uid=APP_UID if label == "outbound" else None)
        took = time.monotonic() - start
        check(f"{label} curl with Expect: 100-continue and 2 MiB completes in under 2.5 s (curl waits 5 s without a 100)",
              out.stdout == "200" and took < 2.5, f"{out.stdout} {out.stderr.strip()} after {took:.2f}s")

        # The app sends 103, then the 200 a second later: the 103 must not wait for the 200.
        conn = Raw(ns, host, port)
        try:
            start = time.monotonic()
            conn.send(f"GET /early-hints?ms=1000 HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
            conn.buf, state = recv_until(conn.sock, lambda d: b"\r\n\r\n" in d, 5)
            first_at = time.monotonic() - start
            first = conn.buf.split(b"\r\n\r\n", 1)[0]
            responses, state = conn.response(5)
            final_at = time.monotonic() - start
            ok = (first.startswith(b"HTTP/1.1 103 ") and b"link: </a.css>; rel=preload" in first.lower()
                  and responses and responses[-1].code == 200 and responses[-1].body == b"hinted\n" and final_at - first_at > 0.5)
            check(f"{label} 103 Early Hints (with its Link header) reaches the client before the 200, without waiting for it",
                  ok, f"first head {first[:120]!r} at {first_at:.2f}s, final at {final_at:.2f}s ({state}): {responses}")
        except OSError as error:
            check(f"{label} 103 Early Hints exchange", False, repr(error))
        finally:
            conn.close()


# --- 6. request smuggling ----------------------------------------------------------------------------------

def smuggling_shapes(tag):
    """(name, id, request bytes, expected status, head_may_reach_app). Each carries a second request,
    GET /smuggled-<id>, where a parser that gets the framing wrong would find it."""
    shapes = []

    def add(name, sid, head_lines, body, status=400, head_ok=False):
        """body(embedded request) gives the body; None: the embedded request itself, by Content-Length."""
        sid = f"{sid}-{tag}"
        emb = f"GET /smuggled-{sid} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        lines = [l.replace(b"%CL", str(len(emb)).encode()) for l in head_lines]
        head = f"POST /smuggle-{sid} HTTP/1.1\r\nHost: x\r\n".encode() + b"".join(l + b"\r\n" for l in lines) + b"\r\n"
        shapes.append((name, sid, head + (emb if body is None else body(emb)), status, head_ok))

    chunk = lambda emb: f"{len(emb):x}\r\n".encode() + emb + b"\r\n0\r\n\r\n"  # noqa: E731
    add("Content-Length with Transfer-Encoding: chunked", "a1",
        [b"Content-Length: 5", b"Transfer-Encoding: chunked"], lambda e: b"0\r\n\r\n" + e)
    add("Transfer-Encoding: chunked with Content-Length", "a2",
        [b"Transfer-Encoding: chunked", b"Content-Length: 3"], lambda e: b"0\r\n\r\n" + e)
    add("two different Content-Length headers (5 and 6)", "b1",
        [b"Content-Length: 5", b"Content-Length: 6"], lambda e: b"hello!" + e)
    add("one Content-Length with two values (5, 6)", "b2", [b"Content-Length: 5, 6"], lambda e: b"hello!" + e)
    add("Transfer-Encoding: chunked, gzip (chunked not final)", "c1", [b"Transfer-Encoding: chunked, gzip"], chunk)
    add("Transfer-Encoding: gzip alone", "c2", [b"Transfer-Encoding: gzip"], lambda e: b"\x1f\x8b" + e)
    add("bad chunk size (zz)", "d1", [b"Transfer-Encoding: chunked"], lambda e: b"zz\r\n" + e, head_ok=True)
    # 2^64 wraps to 0 in a parser that does not check for overflow: the body would end there.
    add("chunk size overflowing 64 bits", "d2", [b"Transfer-Encoding: chunked"], lambda e: b"10000000000000000\r\n\r\n" + e,
        head_ok=True)
    add("obs-fold (a header continued on the next line)", "e1",
        [b"X-Folded: a", b" b", b"Content-Length: %CL"], None)
    add("obs-fold hiding Transfer-Encoding: chunked", "e2", [b"Transfer-Encoding:", b" chunked"], lambda e: b"0\r\n\r\n" + e)
    add("bare LF inside a header value", "f1", [b"X-A: a\nb: c", b"Content-Length: %CL"], None)
    add("bare CR inside a header value", "f2", [b"X-A: a\rb", b"Content-Length: %CL"], None)
    add("NUL byte in a header value", "f3", [b"X-A: a\x00b", b"Content-Length: %CL"], None)
    add("header block over 64 KiB", "g", [b"X-Pad-%d: %s" % (i, b"a" * 1000) for i in range(70)] + [b"Content-Length: %CL"],
        None, status=431)
    return shapes


def smuggle_one(ns, host, port, raw):
    """Sends one shape; returns (first status code or None, how the connection ended, headers, bytes read)."""
    try:
        sock = connect(ns, host, port)
    except OSError as error:
        return None, f"connect: {error}", {}, b""
    try:
        try:
            sock.sendall(raw)
        except OSError:
            pass  # the proxy may refuse before reading everything; its answer can still be read
        data, state = recv_until(sock, lambda d: False, 5)
        responses, _ = parse_responses(data, eof=True)
        first = responses[0] if responses else None
        return (first.code if first else None), state, (first.headers if first else {}), data
    finally:
        sock.close()


def smuggling(pod):
    net = pod.net
    jobs = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        for label, ns, host, port, app_ns, app_port in directions(net):
            for shape in smuggling_shapes(label[:3]):
                jobs.append((label, shape, app_ns, app_port, pool.submit(smuggle_one, ns, host, port, shape[2])))
        outcomes = [(label, shape, app_ns, app_port, future.result()) for label, shape, app_ns, app_port, future in jobs]
    seen = {label: seen_by_app(app_ns, app_port) for label, _, _, _, app_ns, app_port in directions(net)}
    for label, (name, sid, _, status, head_ok), _, _, (code, state, headers, data) in outcomes:
        reached = [t for t in seen[label] if t.startswith(f"/smuggled-{sid}") or (not head_ok and t.startswith(f"/smuggle-{sid}"))]
        closed = state in ("eof", "reset")
        if head_ok:
            # The head was valid, so it may have gone on; the body is broken: 400, or a cut connection.
            answered = code == 400 or (closed and (code is None or code >= 400))
            want = "400 or a closed connection"
        else:
            answered = code == status and closed and headers.get("connection", "").lower() == "close"
            want = f"{status} with connection: close, then closed"
        detail = f"want {want}; got {code} ({state}) {data[:160]!r}; the app saw {reached}"
        check(f"{label} smuggling [{sid}] {name}: {want}, the app sees nothing", answered and not reached, detail)


def head_requests(pod):
    """A HEAD answer has no body whatever its framing headers say; the next response on the connection must
    start right after its head (a chunk terminator there would be read as the start of the next response)."""
    for label, ns, host, port, _, _ in directions(pod.net):
        for path in ("/chunked-head", "/plain-head"):
            sock = connect(ns, host, port)
            try:
                sock.sendall(f"HEAD {path} HTTP/1.1\r\nHost: app\r\n\r\nGET /hello HTTP/1.1\r\nHost: app\r\n\r\n".encode())
                data, state = recv_until(sock, lambda d: b"hello from" in d, 5)
            finally:
                sock.close()
            first_end = data.find(b"\r\n\r\n")
            ok = data.startswith(b"HTTP/1.1 200") and first_end > 0 and data[first_end + 4:].startswith(b"HTTP/1.1 200") \
                and b"hello from" in data
            check(f"{label} HEAD {path} then GET on one connection: no body after the HEAD answer, the GET is answered",
                  ok, f"{state}: {data[:300]!r}")


# --- 3. an app that closes idle keep-alive connections first -----------------------------------------------

def keepalive(pod):
    net = pod.net
    targets = [("inbound", net.client, POD, KEEPALIVE_PORT, net.pod), ("outbound", net.pod, EXT, EXT_KEEPALIVE_PORT, net.external)]

    def stats(app_ns, port):
        response, _ = http(app_ns, "127.0.0.1", port, "GET", "/stats")
        return response.body.decode().strip() if response else "?"

    with concurrent.futures.ThreadPoolExecutor(max_workers=48) as pool:
        # Ten overlapping requests make the proxy open (and then pool) about ten upstream connections.
        for label, ns, host, port, app_ns in targets:
            warm = list(pool.map(lambda _: http(ns, host, port, "GET", "/slow?ms=500")[0], range(10)))
            codes = [r.code if r else None for r in warm]
            info(f"{label} keep-alive app: 10 concurrent warm-up requests {codes}; app {stats(app_ns, port)}")
        time.sleep(3)  # the app drops its idle connections after 2 s: every pooled one is now closed under the proxy

        def keepalive_client(ns, host, port):
            codes = []
            try:
                conn = Raw(ns, host, port)
            except OSError as error:
                return [f"connect: {error}"]
            try:
                for i in range(6):
                    body = b"y" * 65536 if i % 2 else b""
                    head = f"{'POST' if body else 'GET'} /upload HTTP/1.1\r\nHost: {host}:{port}\r\n"
                    conn.send(head.encode() + (f"Content-Length: {len(body)}\r\n" if body else "").encode() + b"\r\n" + body)
                    responses, state = conn.response(10)
                    codes.append(responses[-1].code if responses and responses[-1].code >= 200 else state)
            except OSError as error:
                codes.append(repr(error))
            finally:
                conn.close()
            return codes

        runs = []
        for label, ns, host, port, app_ns in targets:
            gets = [pool.submit(http, ns, host, port, "GET", "/hello") for _ in range(10)]
            posts = [pool.submit(http, ns, host, port, "POST", "/upload", b"z" * 65536) for _ in range(10)]
            runs.append((label, app_ns, port, gets, posts, pool.submit(keepalive_client, ns, host, port)))
        for label, app_ns, port, gets, posts, kept in runs:
            get_codes = [r.code if r else s for r, s in (f.result() for f in gets)]
            post_codes = [r.code if r else s for r, s in (f.result() for f in posts)]
            kept_codes = kept.result()
            ok = all(c == 200 for c in get_codes + post_codes + kept_codes)
            check(f"{label} stale pooled connections (app closed them after 2 s idle): 10 GETs, 10 POSTs with bodies and "
                  "6 requests on one keep-alive client connection all get 200",
                  ok, f"GETs {get_codes} POSTs {post_codes} keep-alive {kept_codes}")
            info(f"{label} keep-alive app after the run: {stats(app_ns, port)}")


# --- 2. h2c: app restart under a live connection, garbage after the preface ---------------------------------

class H2Client:
    """An h2c (prior knowledge) client connection driven by hand."""

    def __init__(self, ns, host, port, timeout=5.0):
        self.sock = connect(ns, host, port, timeout)
        self.conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.sock.sendall(self.conn.data_to_send())
        self.authority = f"{host}:{port}"
        self.goaways = []  # (error_code, last_stream_id) of each GOAWAY received
        self.closed = None  # how the peer ended the connection, once it did
        self.streams = {}
        self.unparsed = b""

    def without_goaways(self, data):
        """Records GOAWAY frames and keeps them from h2. h2 4.1 closes its connection state on the first
        GOAWAY and then rejects the frames a graceful shutdown still sends (the PING of a two-step GOAWAY,
        the rest of the streams in flight), which real clients (nghttp2, Go, gRPC) accept."""
        self.unparsed += data
        out = bytearray()
        while len(self.unparsed) >= 9:
            length = int.from_bytes(self.unparsed[:3], "big")
            if len(self.unparsed) < 9 + length:
                break
            frame, self.unparsed = self.unparsed[:9 + length], self.unparsed[9 + length:]
            if frame[3] == 0x7:  # GOAWAY: last stream id, error code
                self.goaways.append((int.from_bytes(frame[13:17], "big"), int.from_bytes(frame[9:13], "big") & 0x7FFFFFFF))
            else:
                out += frame
        return bytes(out)

    @property
    def usable(self):
        return self.closed is None and not self.goaways

    def start(self, path):
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", self.authority), (":path", path)],
                               end_stream=True)
        self.streams[sid] = {"status": None, "body": bytearray(), "ended": False, "reset": None}
        self.sock.sendall(self.conn.data_to_send())
        return sid

    def finished(self, sid):
        s = self.streams[sid]
        refused = any(last < sid for _, last in self.goaways)  # the server will not process it: safe to retry
        return s["ended"] or s["reset"] is not None or refused

    def pump(self, until, timeout):
        """Handles frames until until() holds, the peer closes the connection, or the timeout passes."""
        end = time.monotonic() + timeout
        while not until() and self.closed is None:
            left = end - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                break
            except (ConnectionResetError, BrokenPipeError):
                self.closed = "reset"
                break
            if not data:
                self.closed = "eof"
                break
            try:
                events = self.conn.receive_data(self.without_goaways(data))
            except h2.exceptions.ProtocolError as error:
                self.closed = f"protocol error: {error!r}"
                break
            for event in events:
                s = self.streams.get(getattr(event, "stream_id", None))
                if isinstance(event, h2.events.ResponseReceived) and s is not None:
                    s["status"] = dict(event.headers).get(":status")
                elif isinstance(event, h2.events.DataReceived):
                    if s is not None:
                        s["body"] += event.data
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.StreamEnded) and s is not None:
                    s["ended"] = True
                elif isinstance(event, h2.events.StreamReset) and s is not None:
                    s["reset"] = event.error_code
            pending = self.conn.data_to_send()
            if pending:
                try:
                    self.sock.sendall(pending)
                except OSError:
                    pass
        return until()

    def request(self, path, timeout):
        sid = self.start(path)
        self.pump(lambda: self.finished(sid), timeout)
        return sid, self.streams[sid]

    def close(self):
        self.sock.close()


def h2_restart(pod, state):
    net = pod.net
    client = H2Client(net.client, POD, H2C_PORT)
    try:
        _, first = client.request("/status/200", 5)
        check("h2c: the first request on the client connection is 200", first["status"] == "200" and first["ended"], first)
        stop(state["h2c"])
        state["h2c"] = pod.app(net.pod, "h2c_app.py", "--port", H2C_PORT, log_name="h2c-app-2.log")
        # The proxy's upstream connection died with the app: the same client connection must recover.
        start = time.monotonic()
        failures, reconnects, ok, attempts = [], 0, False, 0
        while time.monotonic() - start < 5 and attempts < 10:
            attempts += 1
            if not client.usable:
                client.close()
                client = H2Client(net.client, POD, H2C_PORT)
                reconnects += 1
            try:
                sid, s = client.request("/status/200", max(0.2, 5 - (time.monotonic() - start)))
            except (h2.exceptions.ProtocolError, OSError) as error:
                failures.append(repr(error))
                continue
            if s["status"] == "200" and s["ended"]:
                ok = True
                break
            if not s["ended"] and s["reset"] is None and any(last < sid for _, last in client.goaways):
                continue  # refused by a GOAWAY: not processed, retried on a new connection, not a failure
            failures.append(f"status {s['status']} reset {s['reset']} closed {client.closed} goaways {client.goaways}")
            time.sleep(0.3)
        took = time.monotonic() - start
        info(f"h2c app restart: {len(failures)} failed attempt(s), {reconnects} new client connection(s), "
             f"success={ok} after {took:.2f}s")
        check("h2c app restarted on the same port: a request succeeds within 5 s with at most 2 failed attempts "
              "(on the same connection, or a new one after a GOAWAY)", ok and len(failures) <= 2,
              f"{len(failures)} failed: {failures[:4]}; reconnects {reconnects}")
    finally:
        client.close()


def frames(data):
    """(type, flags, stream) of each whole frame in server-to-client bytes."""
    out, pos = [], 0
    while len(data) - pos >= 9:
        length = int.from_bytes(data[pos:pos + 3], "big")
        out.append((data[pos + 3], data[pos + 4], int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF))
        pos += 9 + length
    return out


def h2_garbage(pod):
    net = pod.net
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    settings = struct.pack(">I", 0)[1:] + b"\x04\x00" + struct.pack(">I", 0)  # an empty SETTINGS frame
    shapes = [
        ("a SETTINGS frame of length 5 (not a multiple of 6)", preface + settings + b"\x00\x00\x05\x04\x00\x00\x00\x00\x00" + b"\x00" * 5),
        ("a DATA frame header announcing 16 MiB (over SETTINGS_MAX_FRAME_SIZE)",
         preface + settings + b"\xff\xff\xff\x00\x00\x00\x00\x00\x01" + b"\x00" * 1024),
        ("random bytes right after the preface", preface + random.Random(7).randbytes(4096)),
    ]

    def run(raw):
        sock = connect(net.client, POD, H2C_PORT)
        try:
            start = time.monotonic()
            try:
                sock.sendall(raw)
            except OSError:
                pass
            data, state = recv_until(sock, lambda d: False, 5)
            return state, time.monotonic() - start, data
        finally:
            sock.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=len(shapes)) as pool:
        outcomes = list(pool.map(lambda s: run(s[1]), shapes))
    for (name, _), (state, took, data) in zip(shapes, outcomes):
        goaway = any(kind == 7 for kind, _, _ in frames(data))
        check(f"h2c garbage: {name}: the proxy closes the connection within 5 s", state in ("eof", "reset"),
              f"{state} after {took:.2f}s, GOAWAY {'seen' if goaway else 'not seen'}")


# --- 3b. forged needle-client-id ---------------------------------------------------------------------------

DETECT_TIMEOUT_S = 2.0


def identity_fields(ns, port):
    """Every needle-client-id (header or trailer) and Upgrade the app received, asked on its loopback."""
    response, state = http(ns, "127.0.0.1", port, "GET", "/identity-fields")
    if response is None or response.code != 200:
        raise RuntimeError(f"cannot read the app's /identity-fields: {state}")
    return response.body.decode().splitlines()


def send_raw(ns, parts, timeout=8.0):
    """Sends each (pause seconds, bytes) on one connection; returns (every byte answered, how reading ended)."""
    try:
        sock = connect(ns, POD, HTTP_PORT)
    except OSError as error:
        return b"", f"connect: {error}"
    try:
        for pause, data in parts:
            time.sleep(pause)
            try:
                sock.sendall(data)
            except OSError:
                break  # the proxy closed after answering: read what it said
        return recv_until(sock, lambda d: False, timeout)
    finally:
        sock.close()


def forged_identity(pod):
    """Inbound, no request carries a needle-client-id of its own to the app, however it is shaped: request
    lines a lenient server (the app is Python's http.server) would read but a strict parser refuses, a
    request after a silent start, one split around the detect timeout, chunked trailers, an h2c upgrade."""
    net = pod.net
    forged = b"needle-client-id: forged.attacker.serviceaccount.identity.needle.cluster.local\r\n"
    cases = [
        ("a leading space", [(0, b" GET /forge-space HTTP/1.1\r\nHost: a\r\n" + forged + b"Connection: close\r\n\r\n")], "400"),
        ("a double space", [(0, b"GET  /forge-double HTTP/1.1\r\nHost: a\r\n" + forged + b"Connection: close\r\n\r\n")], "400"),
        ("bare LF line ends", [(0, b"GET /forge-lf HTTP/1.1\nHost: a\n" + forged.replace(b"\r\n", b"\n") + b"Connection: close\n\n")], "400"),
        ("an HTTP/0.9-shaped line followed by fields", [(0, b"GET /forge-09\r\n" + forged + b"\r\n")], "400"),
        ("a lower-case method", [(0, b"get /forge-lower HTTP/1.1\r\nHost: a\r\n" + forged + b"Connection: close\r\n\r\n")], "501"),
        ("a leading blank line", [(0, b"\r\nGET /forge-crlf HTTP/1.1\r\nHost: a\r\n" + forged + b"Connection: close\r\n\r\n")], "404"),
        ("a 20 KiB request line", [(0, b"GET /forge-long?" + b"a" * 20000 + b" HTTP/1.1\r\nHost: a\r\n" + forged
                                    + b"Connection: close\r\n\r\n")], "404"),
        ("half a request line, the rest after the detect timeout",
         [(0, b"POST"), (DETECT_TIMEOUT_S + 1, b" /forge-half HTTP/1.1\r\nHost: a\r\n" + forged + b"Content-Length: 0\r\nConnection: close\r\n\r\n")], "404"),
        ("a two-word POST line followed by fields", [(0, b"POST /forge-09post\r\n" + forged + b"Content-Length: 0\r\n\r\n")], "400"),
        ("an RTSP version", [(0, b"POST /forge-rtsp RTSP/1.0\r\nHost: a\r\n" + forged + b"Content-Length: 0\r\n\r\n")], "400"),
        ("a CONNECT tunnel", [(0, b"CONNECT forge-connect:80 HTTP/1.1\r\nHost: forge-connect:80\r\n\r\n"),
                              (0.5, b"GET /forge-tunnelled HTTP/1.1\r\nHost: a\r\n" + forged + b"Connection: close\r\n\r\n")], "405"),
        ("a chunked trailer", [(0, b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                                   b"2\r\nhi\r\n0\r\n" + forged + b"\r\n")], "200"),
        ("an h2c upgrade", [(0, b"GET /forge-h2c HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                                b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n" + forged + b"Connection: close\r\n\r\n")], "404"),
    ]
    for name, parts, status in cases:
        answer, state = send_raw(net.client, parts)
        got = answer.split(b" ", 2)[1].decode("latin-1") if answer.startswith(b"HTTP/1.1 ") else answer[:40]
        check(f"forged needle-client-id, {name}: answered {status}", got == status, f"{got!r} ({state})")
    before = metric_value(pod, "inbound_late_request_refused_total")
    answer, state = send_raw(net.client, [(DETECT_TIMEOUT_S + 1, b"GET /forge-late HTTP/1.1\r\nHost: a\r\n" + forged + b"\r\n")])
    check("forged needle-client-id, a request after a silent start: the connection is closed without an answer",
          answer == b"" and state in ("eof", "reset"), f"{answer[:60]!r} ({state})")
    check("a late request is counted", metric_value(pod, "inbound_late_request_refused_total") == before + 1)
    fields = identity_fields(net.pod, HTTP_PORT)
    check("forged needle-client-id: the app received none, in any header or trailer, and no h2c upgrade",
          not [f for f in fields if "needle-client-id" in f or "h2c" in f], fields)
    seen = seen_by_app(net.pod, HTTP_PORT)
    refused = ["/forge-space", "/forge-double", "/forge-lf", "/forge-09", "/forge-late", "/forge-rtsp", "forge-connect", "/forge-tunnelled"]
    check("requests the proxy refused never reached the app", not [t for t in seen if any(t.startswith(r) for r in refused)],
          [t for t in seen if t.startswith("/forge")])


def metric_value(pod, name, **labels):
    """The sum of `name` over every series that carries all of `labels`."""
    text = pod.curl(pod.net.client, f"http://{POD}:4191/metrics").stdout
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith((name + " ", name + "{"))
               and all(f'{k}="{v}"' in line for k, v in labels.items()))


# --- 4. slowloris ------------------------------------------------------------------------------------------

def slowloris(pod):
    net = pod.net
    count, window = 200, 14.0
    socks, closed, responses = {}, {}, {}
    poller = select.poll()
    try:
        for _ in range(count):
            s = connect(net.client, POD, HTTP_PORT)
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            s.setblocking(False)
            socks[s.fileno()] = s
            poller.register(s, select.POLLIN | select.POLLERR | select.POLLHUP)
        start = time.monotonic()
        normal = {}

        def normal_request():
            out = pod.curl(net.client, "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", f"http://{POD}:{HTTP_PORT}/hello")
            normal["code"] = out.stdout + out.stderr.strip()

        background = threading.Thread(target=normal_request)
        next_tick, started_normal = start + 1, False

        def close_one(fd, how):
            closed[fd] = (how, time.monotonic() - start)
            poller.unregister(fd)

        while time.monotonic() - start < window:
            if not started_normal and time.monotonic() - start > 5:
                background.start()
                started_normal = True
            timeout_ms = max(0, int((min(next_tick, start + window) - time.monotonic()) * 1000))
            for fd, _ in poller.poll(timeout_ms):
                try:
                    data = socks[fd].recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    close_one(fd, "reset")
                    continue
                if not data:
                    close_one(fd, "eof")
                else:
                    responses.setdefault(fd, data[:12])
            if time.monotonic() >= next_tick:
                next_tick += 1
                for fd, s in socks.items():
                    if fd in closed:
                        continue
                    try:
                        s.send(b"a")  # one more header byte: the head never ends
                    except BlockingIOError:
                        pass
                    except OSError:
                        close_one(fd, "send failed")
        if started_normal:
            background.join(timeout=10)
        by_how = {}
        for how, _ in closed.values():
            by_how[how] = by_how.get(how, 0) + 1
        statuses = {}
        for head in responses.values():
            statuses[head] = statuses.get(head, 0) + 1
        times = sorted(t for _, t in closed.values())
        when = f"first {times[0]:.1f}s, median {times[len(times) // 2]:.1f}s, last {times[-1]:.1f}s" if times else "none"
        check(f"slowloris: after {window:.0f} s at least 95% of {count} never-finished request heads are closed by the proxy",
              len(closed) >= 0.95 * count, f"{len(closed)} closed {by_how} ({when}); responses {statuses}")
        info(f"slowloris: {len(closed)}/{count} closed {by_how} ({when}); responses seen {statuses}")
        check("slowloris: meanwhile a normal request gets 200", normal.get("code") == "200", normal)
    finally:
        for s in socks.values():
            s.close()


# --- 7. draining with HTTP/2 and HTTP/1.1 in flight ---------------------------------------------------------

def drain(pod):
    net = pod.net
    h2c = H2Client(net.client, POD, H2C_PORT)
    h1 = Raw(net.client, POD, HTTP_PORT)
    try:
        # SIGTERM goes once the proxy has counted both requests (request_total counts a request when its
        # upstream is known: it is on its way to the app), bounded at 5 s, not after a fixed sleep.
        def requests():
            return [metric_value(pod, "request_total", direction="inbound", target_addr=f"{POD}:{port}")
                    for port in (H2C_PORT, HTTP_PORT)]

        before = requests()
        sid = h2c.start("/slow?ms=2000")
        h1.send(f"GET /slow?ms=2000 HTTP/1.1\r\nHost: {POD}:{HTTP_PORT}\r\n\r\n".encode())
        wait_for(lambda: all(now > was for now, was in zip(requests(), before)), 5, 0.05)
        os.kill(pod.proxy.pid, signal.SIGTERM)
        sigterm = time.monotonic()
        h1_result = {}

        def h1_side():
            responses, state = h1.response(10)
            h1_result["responses"], h1_result["state"] = responses, state
            h1_result["after"] = wait_closed(h1.sock, 2) if state == "done" else state

        thread = threading.Thread(target=h1_side)
        thread.start()
        h2c.pump(lambda: h2c.finished(sid), 10)
        stream_done = time.monotonic() - sigterm
        # The first GOAWAY may come at once or when the stream ends; give it 3 s more at most.
        h2c.pump(lambda: bool(h2c.goaways), 3)
        thread.join(timeout=15)
        s = h2c.streams[sid]
        check("drain h2c: the client receives a GOAWAY", bool(h2c.goaways),
              f"goaways {h2c.goaways}, connection {h2c.closed or 'still open'}")
        check("drain h2c: the in-flight stream completes with 200 and its full body",
              s["status"] == "200" and s["ended"] and bytes(s["body"]) == b"slow done\n",
              f"{s} after {stream_done:.2f}s")
        responses = h1_result.get("responses") or []
        final = responses[-1] if responses and responses[-1].code >= 200 else None
        check("drain HTTP/1.1: the in-flight keep-alive request gets 200 with Connection: close",
              final is not None and final.code == 200 and final.body == b"slow done\n"
              and final.headers.get("connection", "").lower() == "close", f"{h1_result}")
        info(f"drain: HTTP/1.1 connection after its response: {h1_result.get('after')}; "
             f"h2c connection: {h2c.closed or 'open (closed by the client)'}")
    finally:
        h2c.close()
        h1.close()
    last_closed = time.monotonic()
    try:
        code = pod.proxy.wait(timeout=12)
    except subprocess.TimeoutExpired:
        code = "still running"
    exited = time.monotonic() - last_closed
    check("drain: the proxy exits 0 within 2 s of the last connection closing (grace period 10 s)",
          code == 0 and exited <= 2.0, f"exit {code} {exited:.2f}s after the last connection closed")


# --- 5. descriptor exhaustion ------------------------------------------------------------------------------

def descriptor_exhaustion(args):
    with PodNetwork("hfd") as net:
        pod = Pod(net, args.proxy, args.init)
        pod.app(net.pod, "banner_tcp.py", "--port", OPAQUE_PORT, "--name", "held", log_name="banner.log")
        pod.app(net.pod, "hostile_app.py", "--port", HTTP_PORT, "--name", "app", log_name="http-app.log")
        pod.apply_init()
        pod.start_proxy({"NEEDLE_PROXY_INBOUND_PORTS": f"{HTTP_PORT},{OPAQUE_PORT}"}, nofile=128, log_name="proxy-fd.log")
        pid = pod.proxy.pid
        info(f"descriptor exhaustion: the proxy runs with RLIMIT_NOFILE 128, {len(os.listdir(f'/proc/{pid}/fd'))} open at rest")
        held = []
        try:
            # Each proxied connection costs the proxy two descriptors: 200 are far past what it has; the rest
            # wait in its listen backlog.
            log_offset = os.path.getsize(pod.proxy.log_path)
            for _ in range(200):
                held.append(connect(net.client, POD, OPAQUE_PORT))
            cpu_before = cpu_seconds(pid)
            time.sleep(5)
            cpu_used = cpu_seconds(pid) - cpu_before
            alive = pod.proxy.poll() is None
            lines, sample = matching_lines(pod.proxy, log_offset, ("accept", "too many open files", "emfile"))
            check("descriptor exhaustion: at most 20 accept-failure log lines while 200 connections are held",
                  alive and lines <= 20, f"{lines} lines, proxy {'running' if alive else 'exited'}: {sample}")
            check("descriptor exhaustion: the proxy does not spin (CPU < 1.5 s over the 5 s hold)", alive and cpu_used < 1.5,
                  f"{cpu_used:.2f} s CPU")
            served = 0
            for s in held:
                s.setblocking(False)
                try:
                    served += bool(s.recv(64))
                except OSError:
                    pass
            info(f"descriptor exhaustion: {served}/200 held connections got the app's banner; "
                 f"{lines} matching log lines, {cpu_used:.2f} s CPU in 5 s")
        finally:
            for s in held:
                s.close()
        tries = 0

        def new_request():
            nonlocal tries
            tries += 1
            out = pod.curl(net.client, "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", f"http://{POD}:{HTTP_PORT}/hello",
                           timeout=5)
            return out.stdout + out.stderr.strip()

        start = time.monotonic()
        code = wait_for(new_request, 5, 0.3, done=lambda code: code == "200" or tries >= 10)
        check("descriptor exhaustion: after the held connections close, a new request succeeds within 5 s",
              code == "200" and pod.proxy.poll() is None, f"{code} after {time.monotonic() - start:.2f}s, {tries} tries")


# --- the main pod ------------------------------------------------------------------------------------------

def main_pod(args):
    with PodNetwork("hst") as net:
        pod = Pod(net, args.proxy, args.init)
        state = {}
        pod.app(net.pod, "hostile_app.py", "--port", HTTP_PORT, "--name", "app", log_name="http-app.log")
        state["h2c"] = pod.app(net.pod, "h2c_app.py", "--port", H2C_PORT, log_name="h2c-app.log")
        pod.app(net.pod, "short_keepalive_app.py", "--port", KEEPALIVE_PORT, "--idle-timeout", 2, log_name="keepalive-app.log")
        pod.app(net.external, "hostile_app.py", "--port", EXT_HTTP_PORT, "--name", "external", log_name="ext-http-app.log")
        pod.app(net.external, "short_keepalive_app.py", "--port", EXT_KEEPALIVE_PORT, "--idle-timeout", 2,
                log_name="ext-keepalive-app.log")
        pod.apply_init()
        pod.start_proxy({
            "NEEDLE_PROXY_SHUTDOWN_GRACE_PERIOD": "10s",
            "NEEDLE_PROXY_DETECT_TIMEOUT": f"{DETECT_TIMEOUT_S:.0f}s",
            "NEEDLE_PROXY_INBOUND_PORTS": f"{HTTP_PORT},{H2C_PORT},{KEEPALIVE_PORT}",
        })
        groups = [("1xx responses", informational, (pod,)), ("HEAD answers", head_requests, (pod,)),
                  ("request smuggling", smuggling, (pod,)), ("forged needle-client-id", forged_identity, (pod,)),
                  ("stale keep-alive", keepalive, (pod,)), ("h2c app restart", h2_restart, (pod, state)),
                  ("h2c garbage", h2_garbage, (pod,)), ("slowloris", slowloris, (pod,)),
                  ("drain", drain, (pod,))]  # drain stops the proxy: last
        for name, group, group_args in groups:
            run_group(name, group, *group_args)
            if pod.proxy.poll() is not None and group is not drain:
                check(f"the proxy is still running after the {name} group", False,
                      f"exit {pod.proxy.returncode}: {read_log(pod.proxy)[-400:]}")
                break


def run_group(name, group, *args):
    started = time.monotonic()
    try:
        group(*args)
    except Exception:
        check(f"{name}: the group ran to its end", False, traceback.format_exc()[-600:])
    info(f"{name}: {time.monotonic() - started:.1f} s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--proxy", required=True)
    parser.add_argument("--init", required=True)
    args = parser.parse_args()
    if not have_root():
        print("SKIP needle-proxy hostile-client end-to-end: needs root for network namespaces and iptables (CI runs as root)")
        return 0
    if h2 is None:
        print("FAIL the Python h2 package (h2==4.1.0) is not installed; .ci/run installs it")
        return 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))  # 200 slowloris sockets and more

    def stopped(number, _):
        raise SuiteStopped(f"the suite ran past {SUITE_LIMIT} s" if number == signal.SIGALRM else "SIGTERM")

    signal.signal(signal.SIGALRM, stopped)
    signal.signal(signal.SIGTERM, stopped)  # e.g. CI's `timeout`: clean up rather than die
    signal.alarm(SUITE_LIMIT)
    started = time.monotonic()
    try:
        run_group("main pod", main_pod, args)
        run_group("descriptor exhaustion pod", descriptor_exhaustion, args)
    except SuiteStopped as error:
        check("the suite finishes in time", False, f"stopped: {error}")
    finally:
        signal.alarm(0)
    failed = results.count(False)
    print(f"needle-proxy hostile e2e: {results.count(True)} passed, {failed} failed in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
