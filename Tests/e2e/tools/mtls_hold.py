#!/usr/bin/env python3
"""Opens N connections and holds them idle until killed: mutual TLS 1.3 with a client certificate (the
handshake finished, nothing sent after it), or plaintext with --plain. Prints "held" once all are open,
or "error: ..." and exits 2."""

import argparse, socket, ssl, sys, time


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
    while True:
        time.sleep(60)


if __name__ == "__main__":
    sys.exit(main())
