#!/usr/bin/env python3
"""An HTTP/1.1 keep-alive app that closes a connection after --idle-timeout seconds (default 2) without a
request: shorter than the proxy's upstream pool idle timeout, so pooled connections go stale under it.

GET  /slow?ms=N   200 "slow done" after N ms
GET  /hello       200 "hello"
POST /upload      200 "received=<body length>"
GET  /stats       200 "connections=<accepted> requests=<handled>"
Prints "ready" once listening; exits after --lifetime seconds."""

import argparse, threading, time, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class App(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "needle-short-keepalive-app"

    def log_message(self, *args):
        pass

    def setup(self):
        # StreamRequestHandler applies self.timeout to the socket: an idle connection times out in
        # handle_one_request and is closed (FIN), with no response.
        self.timeout = self.server.idle_timeout
        with self.server.lock:
            self.server.connections += 1
        super().setup()

    def reply(self, status, body):
        with self.server.lock:
            self.server.requests += 1
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/slow":
            time.sleep(int(urllib.parse.parse_qs(url.query).get("ms", ["1000"])[0]) / 1000)
            return self.reply(200, b"slow done\n")
        if url.path == "/stats":
            with self.server.lock:
                text = f"connections={self.server.connections} requests={self.server.requests}\n"
            return self.reply(200, text.encode())
        self.reply(200, b"hello\n")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.reply(200, f"received={len(body)}\n".encode())


class Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver listens with a backlog of 5: a proxy opening a burst of connections (20 stale pooled ones
    # replaced at once) would overflow it, and a dropped SYN waits 1 s to be resent, past the proxy's 100 ms inbound connect timeout (a 504).
    request_queue_size = 128

    def handle_error(self, request, client_address):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--idle-timeout", type=float, default=2)
    parser.add_argument("--lifetime", type=float, default=600)
    args = parser.parse_args()
    server = Server((args.bind, args.port), App)
    server.idle_timeout, server.lock, server.connections, server.requests = args.idle_timeout, threading.Lock(), 0, 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    time.sleep(args.lifetime)


if __name__ == "__main__":
    main()
