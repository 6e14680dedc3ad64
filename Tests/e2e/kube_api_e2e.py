#!/usr/bin/env python3
"""needle-injector against a local HTTPS stand-in for the Kubernetes API that speaks namespace
list (paginated) and watch (chunked newline-delimited events, bookmarks, 410 Gone as an ERROR
event) the way the API server does. Checks the cache, the direct GET on a miss, relisting after
410, bearer tokens re-read from the file, and 500 for a namespace that does not exist."""

import argparse, json, os, shutil, ssl, sys, tempfile, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from webhook_e2e import Injector, check, issue, make_ca, post, processes, read_example, results, tls_context, wait_for  # noqa: E402


class FakeAPI:
    """The stand-in's state: namespaces, a resource-version counter and the event log watches read."""

    def __init__(self, token):
        self.lock = threading.Lock()
        self.rv = 100
        self.namespaces = {}
        self.events = []  # (rv, type, object)
        self.compacted_rv = 0  # watches from below this get 410
        self.token = token
        self.calls = {"list": 0, "watch": 0, "get": {}, "unauthorized": 0}
        self.expire_watches = threading.Event()
        self.delivered_rv = 0  # the newest event a watch has written

    def announced(self):
        """Waits until the newest event went out on a watch, plus a moment for the client to apply it."""
        ok = wait_for(lambda: self.delivered_rv >= self.rv, 10)
        time.sleep(0.3)
        return ok

    def namespace_object(self, name, annotations, rv):
        return {"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "resourceVersion": str(rv), "annotations": annotations,
                             "labels": {"kubernetes.io/metadata.name": name}},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}

    def put(self, name, annotations, announce=True):
        with self.lock:
            self.rv += 1
            kind = "MODIFIED" if name in self.namespaces else "ADDED"
            obj = self.namespace_object(name, annotations, self.rv)
            self.namespaces[name] = obj
            if announce:
                self.events.append((self.rv, kind, obj))


def make_handler(api):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def send_json(self, status, obj):
            body = json.dumps(obj).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def status(self, code, reason, message):
            return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message}

        def do_GET(self):
            if self.headers.get("Authorization") != f"Bearer {api.token}":
                api.calls["unauthorized"] += 1
                return self.send_json(401, self.status(401, "Unauthorized", "bad token"))
            url = urllib.parse.urlparse(self.path)
            query = urllib.parse.parse_qs(url.query)
            if url.path == "/api/v1/namespaces" and query.get("watch") == ["1"]:
                return self.watch(int(query.get("resourceVersion", ["0"])[0]))
            if url.path == "/api/v1/namespaces":
                return self.list(query)
            if url.path.startswith("/api/v1/namespaces/"):
                name = url.path.rsplit("/", 1)[1]
                with api.lock:
                    api.calls["get"][name] = api.calls["get"].get(name, 0) + 1
                    obj = api.namespaces.get(name)
                if obj is None:
                    return self.send_json(404, self.status(404, "NotFound", f'namespaces "{name}" not found'))
                return self.send_json(200, obj)
            self.send_json(404, self.status(404, "NotFound", "no such path"))

        def list(self, query):
            # Pages of one item, whatever limit the client asks for, so pagination is exercised.
            with api.lock:
                api.calls["list"] += 1
                names = sorted(api.namespaces)
                start = int(query.get("continue", ["0"])[0] or 0)
                items = [api.namespaces[n] for n in names[start:start + 1]]
                more = start + 1 < len(names)
                meta = {"resourceVersion": str(api.rv)}
                if more:
                    meta["continue"] = str(start + 1)
            self.send_json(200, {"kind": "NamespaceList", "apiVersion": "v1", "metadata": meta, "items": items})

        def chunk(self, data):
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def watch(self, since):
            with api.lock:
                api.calls["watch"] += 1
                too_old = since < api.compacted_rv
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                if too_old:
                    self.chunk(json.dumps({"type": "ERROR", "object": self.status(410, "Expired", "too old resource version")}).encode() + b"\n")
                    self.chunk(b"")
                    return
                position = since
                deadline = time.time() + 60
                while time.time() < deadline:
                    if api.expire_watches.is_set():
                        self.chunk(json.dumps({"type": "ERROR", "object": self.status(410, "Expired", "too old resource version")}).encode() + b"\n")
                        self.chunk(b"")
                        return
                    with api.lock:
                        fresh = [e for e in api.events if e[0] > position]
                    for rv, kind, obj in fresh:
                        # Split each event across two chunks: clients must reassemble lines.
                        line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
                        self.chunk(line[:10])
                        self.chunk(line[10:])
                        position = rv
                        api.delivered_rv = max(api.delivered_rv, rv)
                    time.sleep(0.05)
                self.chunk(b"")
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
                return

    return Handler


def review_in(inj, ctx, namespace):
    review = json.loads(read_example("pod.json"))
    review["request"]["namespace"] = namespace
    review["request"]["object"]["metadata"]["namespace"] = namespace
    status, body = post(inj, ctx, json.dumps(review).encode())
    if status != 200:
        return status, None
    return status, json.loads(body)["response"]["auditAnnotations"]["decision"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--injector", required=True)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="needle-kube-e2e-")
    server = None
    try:
        ca_key, ca = make_ca(work)
        api_crt, api_key = issue(work, ca_key, ca, "api")
        web_crt, web_key = issue(work, ca_key, ca, "web")
        token_file = os.path.join(work, "token")
        with open(token_file, "w") as f:
            f.write("token-one\n")
        api = FakeAPI("token-one")
        api.put("demo", {"needle.dev/inject": "enabled"})
        api.put("plain", {})
        api.put("off", {"needle.dev/inject": "disabled"})
        server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(api))
        server.daemon_threads = True
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(api_crt, api_key)
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]

        inj = Injector(os.path.abspath(args.injector),
                       ["--tls-cert", web_crt, "--tls-key", web_key, "--kube-api-server", f"https://127.0.0.1:{port}",
                        "--kube-ca-file", ca, "--kube-token-file", token_file, "--log-level", "debug"], os.path.join(work, "injector.log"))
        ctx = tls_context(ca)
        try:
            check("the injector lists namespaces (all pages) and starts a watch",
                  wait_for(lambda: api.calls["list"] >= 1 and api.calls["watch"] >= 1, 10), api.calls)
            check("a pod in a namespace from the list is injected without a direct GET",
                  review_in(inj, ctx, "demo") == (200, "injected") and "demo" not in api.calls["get"], api.calls)
            check("a namespace on a later list page counts (off: not enabled)",
                  review_in(inj, ctx, "off") == (200, "skipped") and "off" not in api.calls["get"])

            api.put("late", {"needle.dev/inject": "enabled"})
            api.announced()
            check("a namespace ADDED on the watch is used without a direct GET",
                  wait_for(lambda: review_in(inj, ctx, "late") == (200, "injected"), 5) and "late" not in api.calls["get"],
                  api.calls)
            api.put("demo", {"needle.dev/inject": "disabled"})
            check("a namespace MODIFIED on the watch changes the decision",
                  wait_for(lambda: review_in(inj, ctx, "demo") == (200, "skipped"), 5))

            api.put("hidden", {"needle.dev/inject": "enabled"}, announce=False)
            check("a cache miss is answered by a direct GET",
                  review_in(inj, ctx, "hidden") == (200, "injected") and api.calls["get"].get("hidden") == 1, api.calls)
            check("a namespace the API does not know is 500", review_in(inj, ctx, "nowhere")[0] == 500)

            # Rotate the token: the file changes and the old one stops working.
            with open(token_file, "w") as f:
                f.write("token-two\n")
            api.token = "token-two"
            lists_before = api.calls["list"]
            api.put("relisted", {"needle.dev/inject": "enabled"}, announce=False)
            with api.lock:
                api.compacted_rv = api.rv + 1
            api.expire_watches.set()
            relisted = wait_for(lambda: api.calls["list"] > lists_before, 10)
            api.expire_watches.clear()
            with api.lock:
                api.compacted_rv = 0
            # A new watch starts only once the whole relist (every page) is in the cache.
            rewatched = wait_for(lambda: api.calls["watch"] >= 2, 15)
            check("a 410 Gone watch error makes the injector relist and watch again", relisted and rewatched, api.calls)
            check("after the relist, namespaces come from the new list (no direct GET)",
                  wait_for(lambda: review_in(inj, ctx, "relisted") == (200, "injected"), 5)
                  and "relisted" not in api.calls["get"], api.calls)
            api.put("after-relist", {"needle.dev/inject": "enabled"})
            api.announced()
            check("the watch resumes after the relist, with the rotated token",
                  wait_for(lambda: review_in(inj, ctx, "after-relist") == (200, "injected"), 10)
                  and "after-relist" not in api.calls["get"], api.calls)
        finally:
            inj.stop()
        check("the injector exits 0 on SIGTERM while a watch is open", inj.proc.returncode == 0, inj.proc.returncode)
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
        if server:
            server.shutdown()
        if results.count(False):
            log = os.path.join(work, "injector.log")
            if os.path.exists(log):
                print("--- injector log (last 30 lines) ---")
                print("".join(open(log).readlines()[-30:]))
        shutil.rmtree(work, ignore_errors=True)
    failed = results.count(False)
    print(f"kubernetes api e2e: {results.count(True)} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
