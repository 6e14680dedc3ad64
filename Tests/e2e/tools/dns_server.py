#!/usr/bin/env python3
"""A tiny authoritative DNS server over UDP for the end-to-end checks: A records from the command line
(--record NAME=IPV4, several allowed), an empty answer for AAAA of a known name, NXDOMAIN for anything
else. Counts the queries it answered in --log (one line each). Prints "ready" once listening."""

import argparse, socket, struct


def parse_name(data, offset):
    labels = []
    while True:
        length = data[offset]
        if length == 0:
            return ".".join(labels), offset + 1
        labels.append(data[offset + 1:offset + 1 + length].decode())
        offset += 1 + length


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--record", action="append", default=[])
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    records = {}
    for record in args.record:
        name, address = record.split("=")
        records[name.lower().rstrip(".")] = socket.inet_aton(address)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.host, args.port))
    print("ready", flush=True)
    while True:
        data, peer = sock.recvfrom(512)
        try:
            qid, _flags, qdcount = struct.unpack("!HHH", data[:6])
            name, end = parse_name(data, 12)
            qtype, _qclass = struct.unpack("!HH", data[end:end + 4])
        except (struct.error, IndexError, UnicodeDecodeError):
            continue
        question = data[12:end + 4]
        known = records.get(name.lower())
        answers = b""
        count = 0
        if known and qtype == 1:
            answers = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 30, 4) + known
            count = 1
        rcode = 0 if known else 3
        header = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, count, 0, 0)
        sock.sendto(header + question + answers, peer)
        with open(args.log, "a") as f:
            f.write(f"{name} {qtype} {'known' if known else 'nxdomain'}\n")


if __name__ == "__main__":
    main()
