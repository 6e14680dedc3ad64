#!/usr/bin/env python3
"""A stand-in for the Kubernetes TokenReview API (authentication.k8s.io/v1), over HTTPS. Tokens it knows
map to a user name and audiences; any other token is unauthenticated, and a known token whose audiences
do not meet the request's is refused, as the API server does. Only the controller's own token may ask.

Importable (TokenReviews, make_handler) or run as a process: prints "ready" once listening. The token
table is re-read from --tokens (JSON: {"token": ["user", ["audience", ...]]}) on every request, so a test
can change it while the process runs."""

import argparse, json, ssl, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATH = "/apis/authentication.k8s.io/v1/tokenreviews"


class TokenReviews:
    def __init__(self, controller_token, tokens=None, tokens_file=None):
        self.controller_token = controller_token
        self.tokens = tokens or {}
        self.tokens_file = tokens_file
        self.calls = 0
        self.unauthorized = 0
        self.lock = threading.Lock()

    def known(self):
        if self.tokens_file:
            with open(self.tokens_file) as f:
                return {token: (entry[0], entry[1]) for token, entry in json.load(f).items()}
        return self.tokens

    def review(self, spec):
        known = self.known().get(spec.get("token"))
        wanted = set(spec.get("audiences", []))
        if known and set(known[1]) & wanted:
            return {"authenticated": True, "user": {"username": known[0], "groups": ["system:serviceaccounts"]},
                    "audiences": sorted(set(known[1]) & wanted)}
        if known:
            return {"authenticated": False, "error": "token audiences do not match"}
        return {"authenticated": False, "error": "invalid bearer token"}


def make_handler(api, cluster=None):
    """With `cluster` (a cluster_api.ClusterObjects), GETs list and watch its Services, EndpointSlices and pods."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.headers.get("Authorization") != f"Bearer {api.controller_token}":
                return self.reply(401, {"kind": "Status", "code": 401})
            if cluster is None or not cluster.handle_get(self):
                self.reply(404, {"kind": "Status", "code": 404})

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"{}")
            if self.path != PATH:
                return self.reply(404, {"kind": "Status", "code": 404})
            if self.headers.get("Authorization") != f"Bearer {api.controller_token}":
                with api.lock:
                    api.unauthorized += 1
                return self.reply(401, {"kind": "Status", "code": 401})
            with api.lock:
                api.calls += 1
            spec = body.get("spec", {})
            self.reply(201, {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec,
                             "status": api.review(spec)})

        def reply(self, code, obj):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def serve(api, host, port, cert, key, cluster=None):
    server = ThreadingHTTPServer((host, port), make_handler(api, cluster))
    server.daemon_threads = True
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    return server


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--controller-token", required=True)
    parser.add_argument("--tokens", required=True, help="JSON file {token: [user, [audiences]]}, re-read per request")
    args = parser.parse_args()
    server = serve(TokenReviews(args.controller_token, tokens_file=args.tokens), args.host, args.port, args.cert, args.key)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
