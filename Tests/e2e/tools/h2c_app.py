#!/usr/bin/env python3
"""A small HTTP/2 cleartext (prior knowledge) app for the proxy tests, built on the `h2` library:
GET /big?size=N, POST /echo, GET /status/N, GET /slow?ms=N. Streams are served concurrently, with
flow control respected both ways. Prints "ready" once listening."""

import argparse, socket, threading, time, urllib.parse

import h2.config, h2.connection, h2.events


def pattern(size):
    block = bytes(range(256)) * 256
    out = bytearray()
    while len(out) < size:
        out += block
    return bytes(out[:size])


class Connection:
    def __init__(self, sock, name="h2c"):
        self.sock = sock
        self.name = name
        self.conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=False))
        self.lock = threading.Lock()
        self.window_open = threading.Condition(self.lock)
        self.bodies = {}
        self.heads = {}

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def serve(self):
        with self.lock:
            self.conn.initiate_connection()
            self.conn.increment_flow_control_window(16 * 1024 * 1024)
            self.flush()
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            with self.lock:
                events = self.conn.receive_data(data)
                for event in events:
                    if isinstance(event, h2.events.RequestReceived):
                        self.heads[event.stream_id] = dict((k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v) for k, v in event.headers)
                        self.bodies[event.stream_id] = bytearray()
                    elif isinstance(event, h2.events.DataReceived):
                        self.bodies.setdefault(event.stream_id, bytearray()).extend(event.data)
                        self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        sid = event.stream_id
                        threading.Thread(target=self.respond, args=(sid, self.heads.pop(sid, {}), bytes(self.bodies.pop(sid, b""))), daemon=True).start()
                    elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
                        self.window_open.notify_all()
                    elif isinstance(event, h2.events.StreamReset):
                        self.window_open.notify_all()
                self.flush()
        with self.lock:
            self.window_open.notify_all()

    def send(self, sid, status, body):
        with self.lock:
            self.conn.send_headers(sid, [(":status", str(status)), ("content-length", str(len(body))), ("x-app", self.name)])
            self.flush()
        offset = 0
        while offset < len(body):
            with self.lock:
                window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
                if window <= 0:
                    self.window_open.wait(timeout=5)
                    continue
                chunk = body[offset:offset + window]
                self.conn.send_data(sid, chunk)
                offset += len(chunk)
                self.flush()
        with self.lock:
            self.conn.end_stream(sid)
            self.flush()

    def respond(self, sid, headers, body):
        url = urllib.parse.urlparse(headers.get(":path", "/"))
        query = urllib.parse.parse_qs(url.query)
        try:
            if url.path == "/big":
                self.send(sid, 200, pattern(int(query.get("size", ["1048576"])[0])))
            elif url.path == "/echo":
                self.send(sid, 200, body)
            elif url.path.startswith("/status/"):
                self.send(sid, int(url.path.rsplit("/", 1)[1]), b"status\n")
            elif url.path == "/slow":
                time.sleep(int(query.get("ms", ["1000"])[0]) / 1000)
                self.send(sid, 200, b"slow done\n")
            else:
                self.send(sid, 200, ("authority=" + headers.get(":authority", "") + "\n").encode())
        except Exception:
            pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--lifetime", type=float, default=300)
    parser.add_argument("--name", default="h2c", help="sent back in every response's x-app field")
    args = parser.parse_args()
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((args.bind, args.port))
    server.listen(64)
    server.settimeout(0.5)
    print("ready", flush=True)
    deadline = time.time() + args.lifetime
    while time.time() < deadline:
        try:
            sock, _ = server.accept()
        except socket.timeout:
            continue
        threading.Thread(target=Connection(sock, args.name).serve, daemon=True).start()


if __name__ == "__main__":
    main()
