#!/usr/bin/env python3
"""A stand-in for the Kubernetes API's list and watch of Services, EndpointSlices and pods, as
needle-controller's destination service reads them: lists with a resourceVersion, paged when asked
(`limit`, `continue`), watches that stream newline-delimited events after a resourceVersion (chunked,
held open until the timeout or a change; the response says Connection: close, as the connection is closed
after it), 410 Gone as an ERROR event for a version older than the log keeps. Used by
token_review_api.make_handler.

For benchmarks: put_many and delete_many change many objects under one lock with one wake-up of the
watches (thousands of objects at once); end_watches ends every open watch, as an API server does when a
watch's timeout comes (the client resumes from its last resourceVersion); compact forgets the log, as etcd
compaction does, so every client's next watch gets 410 and it lists again. A continue token is an offset
into the collection in (namespace, name) order, not a snapshot: a list paged while objects change may
miss or repeat some (the real API server's tokens do not)."""

import bisect, json, threading, time, urllib.parse

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
        self.epoch = 0  # end_watches moves it on: watches begun before end
        self.compacted = 0  # a watch from a resourceVersion older than this gets 410 Gone

    def put(self, path, obj):
        """Adds or replaces an object and tells the watches."""
        self.put_many([(path, obj)])

    def delete(self, path, namespace, name):
        self.delete_many([(path, namespace, name)])

    def put_many(self, items):
        """Adds or replaces each (path, object), in order, each with its own resourceVersion; the watches
        are woken once. Every path is checked before anything changes."""
        for path, obj in items:
            if path not in COLLECTIONS:
                raise KeyError(path)
            if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict) or "name" not in obj.get("metadata", {}):
                raise ValueError("an object needs metadata.name")
        with self.cond:
            for path, obj in items:
                self.rv += 1
                meta = obj.setdefault("metadata", {})
                meta["resourceVersion"] = str(self.rv)
                key = (meta.get("namespace"), meta["name"])
                kind = "MODIFIED" if key in self.objects[path] else "ADDED"
                self.objects[path][key] = obj
                self.log.append((self.rv, path, kind, json.loads(json.dumps(obj))))
            self.cond.notify_all()

    def delete_many(self, items):
        """Deletes each (path, namespace, name) that exists, in order; the watches are woken once."""
        for path, _, _ in items:
            if path not in COLLECTIONS:
                raise KeyError(path)
        with self.cond:
            for path, namespace, name in items:
                obj = self.objects[path].pop((namespace, name), None)
                if obj is None:
                    continue
                self.rv += 1
                obj["metadata"]["resourceVersion"] = str(self.rv)
                self.log.append((self.rv, path, "DELETED", obj))
            self.cond.notify_all()

    def end_watches(self):
        """Ends every watch open now (each sends its last chunk); later watches are not affected."""
        with self.cond:
            self.epoch += 1
            self.cond.notify_all()

    def compact(self):
        """Forgets the change log, as etcd compaction does, and ends the open watches: every watch from a
        resourceVersion before now is answered 410 Gone (its client lists again). A new version marks the
        compaction, so a list made after it can be watched from."""
        with self.cond:
            self.rv += 1
            self.compacted = self.rv
            self.log = []
            self.epoch += 1
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
            limit = int(query.get("limit", ["0"])[0])
            start = int(query.get("continue", ["0"])[0] or 0)
            with self.cond:
                self.lists[path] += 1
                items = list(self.objects[path].values())
                if limit > 0:
                    items.sort(key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))
                    rest = len(items) - (start + limit)
                    items = items[start:start + limit]
                metadata = {"resourceVersion": str(self.rv)}
                if limit > 0 and rest > 0:
                    metadata.update({"continue": str(start + limit), "remainingItemCount": rest})
                body = {"kind": COLLECTIONS[path] + "List", "metadata": metadata, "items": items}
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
            epoch = self.epoch
            expired = 0 < since < self.compacted
            compacted = self.compacted
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        # The connection is closed after the watch: say so, or a client that pools connections sends its next
        # request on one the server is closing (AsyncHTTPClient then fails that request).
        handler.send_header("Connection", "close")
        handler.end_headers()

        def chunk(data):
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            handler.wfile.flush()

        deadline = time.time() + min(timeout, 60)
        try:
            if expired:
                status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "Expired", "code": 410,
                          "message": f"too old resource version: {since} ({compacted})"}
                chunk(json.dumps({"type": "ERROR", "object": status}).encode() + b"\n")
                deadline = 0
            while time.time() < deadline:
                with self.cond:
                    if self.epoch != epoch:
                        break
                    # The log is in resourceVersion order: start after `since` rather than scan it all.
                    start = bisect.bisect_right(self.log, since, key=lambda entry: entry[0])
                    pending = [entry for entry in self.log[start:] if entry[1] == path]
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
