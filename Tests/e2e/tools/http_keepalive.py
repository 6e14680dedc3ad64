#!/usr/bin/env python3
"""An HTTP/1.1 client that sends its requests one after another on ONE keep-alive connection and says
which app answered each (the X-App field http_app.py sets), so a test can see per-request balancing
behind a proxy. One line per request, flushed at once:

    <unix time> ok <n> <status> <app>
    <unix time> fail <n> <why>

then "summary ok=<n> fail=<n>". It stops at the first failure (the connection is then unusable), after
--count requests, or once --duration seconds have passed, whichever comes first; every read is bounded
by --timeout. Exits 0 when no request failed."""

import argparse, socket, sys, time


class Closed(Exception):
    pass


class Reader:
    def __init__(self, sock):
        self.sock, self.buffer = sock, b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Closed("the connection closed")
        self.buffer += data

    def until(self, marker):
        while marker not in self.buffer:
            self.fill()
        head, self.buffer = self.buffer.split(marker, 1)
        return head

    def exactly(self, size):
        while len(self.buffer) < size:
            self.fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def response(reader):
    head = reader.until(b"\r\n\r\n").decode("latin-1")
    lines = head.split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if fields.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int(reader.until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                reader.until(b"\r\n")
                break
            body += reader.exactly(size)
            reader.exactly(2)
    else:
        body = reader.exactly(int(fields.get("content-length", "0")))
    return status, fields, body


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/hello")
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between requests")
    parser.add_argument("--duration", type=float, default=60.0, help="send no request after this many seconds")
    parser.add_argument("--timeout", type=float, default=5.0)
    args = parser.parse_args()
    ok = failed = 0
    started = time.time()
    try:
        sock = socket.create_connection((args.host, args.port), timeout=args.timeout)
    except OSError as error:
        print(f"{time.time():.3f} fail 0 connect: {error}", flush=True)
        print("summary ok=0 fail=1", flush=True)
        return 1
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    print(f"{time.time():.3f} connected {sock.getsockname()[0]}:{sock.getsockname()[1]}", flush=True)
    reader = Reader(sock)
    for n in range(1, args.count + 1):
        if time.time() - started > args.duration:
            break
        try:
            sock.sendall(f"GET {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n\r\n".encode())
            status, fields, _ = response(reader)
            app = fields.get("x-app", "-")
            if status != 200:
                failed += 1
                print(f"{time.time():.3f} fail {n} status {status} from {app} {fields.get('l5d-proxy-error', '')}", flush=True)
            else:
                ok += 1
                print(f"{time.time():.3f} ok {n} {status} {app}", flush=True)
            if fields.get("connection", "").lower() == "close":
                print(f"{time.time():.3f} fail {n + 1} the proxy asked to close the connection", flush=True)
                failed += 1
                break
        except (OSError, Closed, ValueError, IndexError) as error:
            failed += 1
            print(f"{time.time():.3f} fail {n} {type(error).__name__}: {error}", flush=True)
            break
        if args.interval:
            time.sleep(args.interval)
    sock.close()
    print(f"summary ok={ok} fail={failed}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
