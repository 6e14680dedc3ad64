#!/usr/bin/env python3
"""A small HTTP/1.1 app for the proxy tests (keep-alive, streaming):
GET /hello, POST /echo (body back), GET /big?size=N (N deterministic bytes), GET /status/N,
GET /slow?ms=N, GET /ws (Upgrade: websocket -> 101, then echoes raw bytes until EOF).
Prints "ready" once listening; exits after --lifetime seconds."""

import argparse, socket, sys, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def pattern(size):
    block = bytes(range(256)) * 256  # 64 KiB
    out = bytearray()
    while len(out) < size:
        out += block
    return bytes(out[:size])


class App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "needle-test-app"

    def log_message(self, *args):
        pass

    def reply(self, status, body, extra=None):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-App", self.server.name)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/client-id":
            # Every needle-client-id field the request carried, in order, one per line ("-" for none).
            seen = self.headers.get_all("needle-client-id") or []
            return self.reply(200, ("\n".join(seen) if seen else "-").encode() + b"\n")
        if url.path == "/hello":
            return self.reply(200, b"hello from " + self.server.name.encode() + b"\n",
                              {"X-Seen-Host": self.headers.get("Host", ""), "X-Seen-Connection": self.headers.get("Connection", "")})
        if url.path == "/big":
            size = int(query.get("size", ["1048576"])[0])
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            data = pattern(size)
            for i in range(0, size, 65536):
                self.wfile.write(data[i:i + 65536])
            return
        if url.path.startswith("/status/"):
            return self.reply(int(url.path.rsplit("/", 1)[1]), b"status\n")
        if url.path == "/slow":
            time.sleep(int(query.get("ms", ["1000"])[0]) / 1000)
            return self.reply(200, b"slow done\n")
        if url.path == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.end_headers()
            self.wfile.flush()
            conn = self.connection
            conn.settimeout(10)
            try:
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    conn.sendall(data)
            except OSError:
                pass
            self.close_connection = True
            return
        self.reply(404, b"not found\n")

    do_HEAD = do_GET

    def do_POST(self):
        if self.path.startswith("/echo"):
            body = self.read_body()
            return self.reply(200, body)
        self.reply(404, b"not found\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="app")
    parser.add_argument("--lifetime", type=float, default=300)
    args = parser.parse_args()
    # A real server's backlog, not http.server's 5: under a burst of new connections dropped SYNs would
    # wait out a 1 s retransmit, past the proxy's 100 ms inbound connect timeout.
    ThreadingHTTPServer.request_queue_size = 128
    if ":" in args.bind:
        ThreadingHTTPServer.address_family = socket.AF_INET6
    server = ThreadingHTTPServer((args.bind, args.port), App)
    server.daemon_threads = True
    server.name = args.name
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    time.sleep(args.lifetime)


if __name__ == "__main__":
    main()
