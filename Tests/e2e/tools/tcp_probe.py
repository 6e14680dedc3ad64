#!/usr/bin/env python3
"""Tiny TCP listener and client for the redirection tests.

serve:   accepts connections and answers each with one line
         "<name> local=<ip:port> orig=<ip:port|none> peer=<ip:port>", then closes.
         orig is SO_ORIGINAL_DST (IPv4) or IP6T_SO_ORIGINAL_DST (IPv6): where the client meant to go
         before iptables redirected it. Prints "ready" once listening; exits after --lifetime seconds.
connect: connects, prints the line it got (or "error: ..."), exits 0 on a reply, 1 otherwise."""

import argparse, socket, struct, sys, time

SO_ORIGINAL_DST = 80


def original_destination(conn, family):
    try:
        if family == socket.AF_INET:
            raw = conn.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            port = struct.unpack("!H", raw[2:4])[0]
            return f"{socket.inet_ntop(socket.AF_INET, raw[4:8])}:{port}"
        raw = conn.getsockopt(41, SO_ORIGINAL_DST, 28)  # SOL_IPV6
        port = struct.unpack("!H", raw[2:4])[0]
        return f"[{socket.inet_ntop(socket.AF_INET6, raw[8:24])}]:{port}"
    except OSError:
        return "none"


def fmt(address, family):
    return f"[{address[0]}]:{address[1]}" if family == socket.AF_INET6 else f"{address[0]}:{address[1]}"


def serve(args):
    family = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    server = socket.socket(family, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    server.bind((args.bind, args.port))
    server.listen(64)
    server.settimeout(0.5)
    print("ready", flush=True)
    deadline = time.time() + args.lifetime
    while time.time() < deadline:
        try:
            conn, peer = server.accept()
        except socket.timeout:
            continue
        with conn:
            local = conn.getsockname()
            line = f"{args.name} local={fmt(local, family)} orig={original_destination(conn, family)} peer={fmt(peer, family)}\n"
            conn.sendall(line.encode())


def connect(args):
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(args.timeout)
            s.connect((args.host, args.port))
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(1024)
                if not chunk:
                    break
                data += chunk
        print(data.decode().strip())
        return 0 if data else 1
    except OSError as error:
        print(f"error: {error}")
        return 1


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--bind", required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--name", required=True)
    s.add_argument("--lifetime", type=float, default=120)
    c = sub.add_parser("connect")
    c.add_argument("--host", required=True)
    c.add_argument("--port", type=int, required=True)
    c.add_argument("--timeout", type=float, default=3)
    args = parser.parse_args()
    sys.exit(serve(args) if args.command == "serve" else connect(args))


if __name__ == "__main__":
    main()
