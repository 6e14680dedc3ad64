#!/usr/bin/env python3
"""Opens N connections and holds them idle until killed: mutual TLS 1.3 with a client certificate (the
handshake finished, nothing sent after it), or plaintext with --plain. Prints "held" once all are open,
or "error: ..." and exits 2. With --load-seconds S it then first sends keep-alive GET /hello requests
on every connection (a thread each: the app's response arrives in two writes, so one connection waits
out delayed ACKs and many must run at once) for S seconds, prints
"loaded <requests> <failures>", and holds them."""

import argparse, socket, ssl, sys, threading, time


def exchange(conn):
    """One keep-alive GET /hello and its whole response: None when it came back as a 200, else what did."""
    conn.sendall(b"GET /hello HTTP/1.1\r\nHost: app\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return f"closed after {data[:60]!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return "closed in the body"
        body += chunk
    return None if head.startswith(b"HTTP/1.1 200") else f"{head[:200]!r} {body[:200]!r}"


def load(held, seconds):
    counts = [0, 0]
    problems = []
    lock = threading.Lock()
    deadline = time.time() + seconds

    def worker(conn):
        done = failed = 0
        while time.time() < deadline:
            try:
                problem = exchange(conn)
            except OSError as error:
                problem = f"{error}"
            done, failed = done + 1, failed + (problem is not None)
            if problem is not None:
                with lock:
                    problems.append(problem)
                break
        with lock:
            counts[0] += done
            counts[1] += failed

    threads = [threading.Thread(target=worker, args=(conn,)) for conn in held]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts, problems


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--server-name")
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--plain", action="store_true")
    parser.add_argument("--load-seconds", type=float, default=0)
    args = parser.parse_args()
    held = []
    try:
        context = None
        if not args.plain:
            context = ssl.create_default_context(cafile=args.ca)
            context.minimum_version = ssl.TLSVersion.TLSv1_3
            context.load_cert_chain(args.cert, args.key)
        for _ in range(args.count):
            raw = socket.create_connection((args.host, args.port), timeout=10)
            held.append(raw if args.plain else context.wrap_socket(raw, server_hostname=args.server_name))
    except (OSError, ssl.SSLError) as error:
        print(f"error: {error}", flush=True)
        return 2
    print("held", flush=True)
    if args.load_seconds > 0:
        (done, failed), problems = load(held, args.load_seconds)
        print(f"loaded {done} {failed}", flush=True)
        for problem in problems[:3]:
            print(f"failure: {problem}", flush=True)
    while True:
        time.sleep(60)


if __name__ == "__main__":
    sys.exit(main())
