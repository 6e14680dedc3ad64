#!/usr/bin/env python3
"""A server-speaks-first TCP service: sends "HELLO <name>\\n" on connect, then echoes what it reads."""

import argparse, socket, threading, time


def handle(conn, name):
    with conn:
        try:
            conn.sendall(f"HELLO {name}\n".encode())
            conn.settimeout(30)
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        except OSError:
            pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bind", default="0.0.0.0")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="banner")
    parser.add_argument("--lifetime", type=float, default=300)
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
            conn, _ = server.accept()
        except socket.timeout:
            continue
        threading.Thread(target=handle, args=(conn, args.name), daemon=True).start()


if __name__ == "__main__":
    main()
