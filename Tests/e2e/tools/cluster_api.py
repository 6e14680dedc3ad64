#!/usr/bin/env python3
"""A stand-in for the Kubernetes API's list and watch of Services, EndpointSlices and pods, as
needle-controller's destination service reads them: lists with a resourceVersion, watches that stream
newline-delimited events after a resourceVersion (chunked, held open until the timeout or a change), 410
Gone as an ERROR event for a version older than the log keeps. Used by token_review_api.make_handler."""

import json, threading, time, urllib.parse

COLLECTIONS = {
    "/api/v1/services": "Service",
    "/apis/discovery.k8s.io/v1/endpointslices": "EndpointSlice",
    "/api/v1/pods": "Pod",
}


class ClusterObjects:
    def __init__(self):
        self.cond = threading.Condition()
        self.rv = 1
        self.objects = {path: {} for path in COLLECTIONS}  # path -> {(ns, name): object}
        self.log = []  # (rv, path, type, object)
        self.lists = {path: 0 for path in COLLECTIONS}
        self.watches = {path: 0 for path in COLLECTIONS}

    def put(self, path, obj):
        """Adds or replaces an object and tells the watches."""
        with self.cond:
            self.rv += 1
            meta = obj.setdefault("metadata", {})
            meta["resourceVersion"] = str(self.rv)
            key = (meta.get("namespace"), meta["name"])
            kind = "MODIFIED" if key in self.objects[path] else "ADDED"
            self.objects[path][key] = obj
            self.log.append((self.rv, path, kind, json.loads(json.dumps(obj))))
            self.cond.notify_all()

    def delete(self, path, namespace, name):
        with self.cond:
            obj = self.objects[path].pop((namespace, name), None)
            if obj is None:
                return
            self.rv += 1
            obj["metadata"]["resourceVersion"] = str(self.rv)
            self.log.append((self.rv, path, "DELETED", obj))
            self.cond.notify_all()

    def handle_get(self, handler):
        """Serves a GET if it is one of the collections; returns False otherwise."""
        url = urllib.parse.urlparse(handler.path)
        path = url.path
        if path not in COLLECTIONS:
            return False
        query = urllib.parse.parse_qs(url.query)
        if query.get("watch") == ["1"]:
            self.watch(handler, path, int(query.get("resourceVersion", ["0"])[0]), int(query.get("timeoutSeconds", ["300"])[0]))
        else:
            with self.cond:
                self.lists[path] += 1
                body = {"kind": COLLECTIONS[path] + "List", "metadata": {"resourceVersion": str(self.rv)},
                        "items": list(self.objects[path].values())}
            data = json.dumps(body).encode()
            handler.send_response(200)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        return True

    def watch(self, handler, path, since, timeout):
        with self.cond:
            self.watches[path] += 1
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

        def chunk(data):
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()

        deadline = time.time() + min(timeout, 60)
        try:
            while time.time() < deadline:
                with self.cond:
                    pending = [entry for entry in self.log if entry[0] > since and entry[1] == path]
                    if not pending:
                        self.cond.wait(timeout=0.5)
                        continue
                for rv, _, kind, obj in pending:
                    chunk(json.dumps({"type": kind, "object": obj}).encode() + b"\n")
                    since = rv
            chunk(b"")
        except OSError:
            pass
        handler.close_connection = True
