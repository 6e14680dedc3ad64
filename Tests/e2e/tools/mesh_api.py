#!/usr/bin/env python3
"""The stand-in Kubernetes API for a whole mesh, as one process: the TokenReview API (token_review_api.py)
and the list/watch of Services, EndpointSlices and pods (cluster_api.py) on one HTTPS port, so it can run
inside a network namespace of its own. The test changes the objects through standard input, one JSON
command a line:

    {"put": "/api/v1/pods", "object": {...}}
    {"delete": "/api/v1/pods", "namespace": "shop", "name": "web-2"}
    {"put_many": [["/api/v1/pods", {...}], ["/api/v1/services", {...}], ...]}
    {"delete_many": [["/api/v1/pods", "shop", "web-2"], ...]}
    {"end_watches": true}
    {"compact": true}

and reads "done <resourceVersion>" back for each (or "error <why>"). The _many forms apply their objects
in order under one lock and wake the watches once (thousands of objects in one line); end_watches ends the
open watches, as an API server does at a watch's timeout; compact makes every client list again (410 Gone
on its next watch, as after etcd compaction). Prints "ready" once listening; exits when standard input
closes."""

import argparse, json, os, sys, threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster_api import ClusterObjects  # noqa: E402
from token_review_api import TokenReviews, serve  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--controller-token", required=True)
    parser.add_argument("--tokens", required=True, help="JSON file {token: [user, [audiences]]}, re-read per request")
    args = parser.parse_args()
    cluster = ClusterObjects()
    server = serve(TokenReviews(args.controller_token, tokens_file=args.tokens), args.host, args.port, args.cert, args.key, cluster)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ready", flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            command = json.loads(line)
            if "put" in command:
                cluster.put(command["put"], command["object"])
            elif "delete" in command:
                cluster.delete(command["delete"], command["namespace"], command["name"])
            elif "put_many" in command:
                cluster.put_many([(path, obj) for path, obj in command["put_many"]])
            elif "delete_many" in command:
                cluster.delete_many([(path, namespace, name) for path, namespace, name in command["delete_many"]])
            elif command.get("end_watches"):
                cluster.end_watches()
            elif command.get("compact"):
                cluster.compact()
            else:
                raise ValueError("none of put, delete, put_many, delete_many, end_watches, compact")
            with cluster.cond:
                version = cluster.rv
            print(f"done {version}", flush=True)
        except (ValueError, KeyError, TypeError) as error:
            print(f"error {error}", flush=True)
    server.shutdown()


if __name__ == "__main__":
    main()
