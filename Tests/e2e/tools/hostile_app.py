#!/usr/bin/env python3
"""An HTTP/1.1 app for the hostile-client proxy tests. It records the target of every request line it
parses, so a test can prove that a request the proxy should have rejected never reached it.

GET  /hello              200 "hello from <name>"
GET  /seen               200, the request targets seen so far, one per line (this one included)
GET  /count?path=P       200, how many requests had path P
GET  /identity-fields    200, every needle-client-id (header or trailer) and Upgrade any request carried, one per
                         line as "<target> <field> <value>" (this is how a test proves a forged one never arrived)
GET  /slow?ms=N          200 "slow done" after N ms
GET  /early-hints?ms=N   "103 Early Hints" (Link: </a.css>; rel=preload) at once, then 200 "hinted" N ms later
POST /upload             200 "received=<body length>" (Expect: 100-continue is answered with 100 before the body
                         is read: http.server does that for HTTP/1.1 requests)
POST /echo               200, the body back
HEAD /chunked-head       200 with "Transfer-Encoding: chunked" and no body (as Node.js answers HEAD)
HEAD anything else       200 with a Content-Length and no body
anything else            404 (still recorded)
Prints "ready" once listening; exits after --lifetime seconds."""

import argparse, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "needle-hostile-app"

    def log_message(self, *args):
        pass

    def parse_request(self):
        # Recorded before parsing, so even a request http.server itself would reject is counted.
        parts = self.raw_requestline.split()
        target = parts[1].decode("latin-1") if len(parts) > 1 else self.raw_requestline.decode("latin-1").strip()
        with self.server.lock:
            self.server.seen.append(target)
        parsed = super().parse_request()
        if parsed:
            for value in self.headers.get_all("needle-client-id") or []:
                self.record_field("needle-client-id", value)
            for value in self.headers.get_all("upgrade") or []:
                self.record_field("upgrade", value)
        return parsed

    def record_field(self, name, value):
        with self.server.lock:
            self.server.fields.append(f"{self.path} {name} {value}")

    def reply(self, status, body, extra=None):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-App", self.server.name)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        """The request body, or None when its framing is broken (the connection is then closed)."""
        try:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                data = bytearray()
                while True:
                    size = int(self.rfile.readline(1024).split(b";")[0], 16)
                    if size == 0:
                        while (line := self.rfile.readline(1024)) not in (b"\r\n", b"\n", b""):
                            name, _, value = line.decode("latin-1").partition(":")
                            if name.strip().lower() == "needle-client-id":
                                self.record_field("needle-client-id(trailer)", value.strip())
                        return bytes(data)
                    data += self.rfile.read(size)
                    self.rfile.readline(1024)
            return self.rfile.read(int(self.headers.get("Content-Length", "0")))
        except (ValueError, OSError):
            self.close_connection = True
            return None

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/hello":
            return self.reply(200, f"hello from {self.server.name}\n".encode())
        if url.path == "/seen":
            with self.server.lock:
                return self.reply(200, "".join(t + "\n" for t in self.server.seen).encode())
        if url.path == "/identity-fields":
            with self.server.lock:
                return self.reply(200, "".join(t + "\n" for t in self.server.fields).encode())
        if url.path == "/count":
            path = query.get("path", [""])[0]
            with self.server.lock:
                n = sum(1 for t in self.server.seen if urllib.parse.urlparse(t).path == path)
            return self.reply(200, f"{n}\n".encode())
        if url.path == "/slow":
            time.sleep(int(query.get("ms", ["1000"])[0]) / 1000)
            return self.reply(200, b"slow done\n")
        if url.path == "/early-hints":
            self.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
            time.sleep(int(query.get("ms", ["1000"])[0]) / 1000)
            return self.reply(200, b"hinted\n")
        self.reply(404, b"not found\n")

    def do_HEAD(self):
        if self.path.startswith("/chunked-head"):
            self.wfile.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-App: " + self.server.name.encode() + b"\r\n\r\n")
            return
        self.send_response(200)
        self.send_header("Content-Length", "42")
        self.end_headers()

    def do_POST(self):
        body = self.read_body()
        if body is None:
            return
        if self.path.startswith("/upload"):
            return self.reply(200, f"received={len(body)}\n".encode())
        if self.path.startswith("/echo"):
            return self.reply(200, body)
        self.reply(404, b"not found\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # A real server's backlog, not socketserver's 5 (see http_app.py).
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass  # hostile input is expected; tracebacks would only fill the log


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="app")
    parser.add_argument("--lifetime", type=float, default=600)
    args = parser.parse_args()
    server = Server((args.bind, args.port), App)
    server.name, server.seen, server.fields, server.lock = args.name, [], [], threading.Lock()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    time.sleep(args.lifetime)


if __name__ == "__main__":
    main()
