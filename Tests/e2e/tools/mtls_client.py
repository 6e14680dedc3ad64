#!/usr/bin/env python3
"""One HTTP/1.1 GET over TLS 1.3 with a client certificate, verifying the server by its mesh TLS name.
Prints the status line's code and the body; on a TLS or connection failure prints "error: ..." and
exits 2."""

import argparse, socket, ssl, sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-name", required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--path", default="/")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--tls12", action="store_true", help="offer TLS 1.2 only")
    args = parser.parse_args()
    context = ssl.create_default_context(cafile=args.ca)
    if args.tls12:
        context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_2
    else:
        context.minimum_version = ssl.TLSVersion.TLSv1_3
    if args.cert:
        context.load_cert_chain(args.cert, args.key)
    request = f"GET {args.path} HTTP/1.1\r\nHost: {args.host}\r\nConnection: close\r\n"
    request += "".join(f"{h}\r\n" for h in args.header) + "\r\n"
    try:
        with socket.create_connection((args.host, args.port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=args.server_name) as tls:
                tls.sendall(request.encode())
                data = b""
                while True:
                    chunk = tls.recv(65536)
                    if not chunk:
                        break
                    data += chunk
    except (OSError, ssl.SSLError) as error:
        print(f"error: {error}")
        return 2
    head, _, body = data.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split(b" ")
    print(status[1].decode() if len(status) > 1 else "000")
    sys.stdout.write(body.decode(errors="replace"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
