#!/usr/bin/env python3
"""An HTTP/2 cleartext (prior knowledge) client, built on the `h2` library, that sends many streams on ONE
connection, --concurrency at a time, and says which app answered each (the x-app field h2c_app.py sets):

    ok <stream id> <status> <app>
    fail <stream id> <why>

then "summary ok=<n> fail=<n>". Bounded by --timeout seconds in all. Exits 0 when every stream got 200."""

import argparse, socket, sys, time

import h2.config, h2.connection, h2.events


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/")
    parser.add_argument("--streams", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=20.0)
    args = parser.parse_args()
    deadline = time.time() + args.timeout
    sock = socket.create_connection((args.host, args.port), timeout=5)
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    heads, done, failures = {}, {}, {}
    sent = 0
    open_streams = set()
    closed = None
    while len(done) + len(failures) < args.streams and time.time() < deadline and closed is None:
        while sent < args.streams and len(open_streams) < args.concurrency:
            sid = conn.get_next_available_stream_id()
            conn.send_headers(sid, [(":method", "GET"), (":scheme", "http"), (":authority", f"{args.host}:{args.port}"),
                                    (":path", args.path)], end_stream=True)
            open_streams.add(sid)
            sent += 1
        sock.sendall(conn.data_to_send())
        sock.settimeout(max(0.1, deadline - time.time()))
        try:
            data = sock.recv(65536)
        except OSError as error:
            closed = f"{type(error).__name__}: {error}"
            break
        if not data:
            closed = "the connection closed"
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                heads[event.stream_id] = {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
                                          for k, v in event.headers}
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                head = heads.get(event.stream_id, {})
                done[event.stream_id] = (head.get(":status", "?"), head.get("x-app", "-"))
                open_streams.discard(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                failures[event.stream_id] = f"reset {event.error_code}"
                open_streams.discard(event.stream_id)
            elif isinstance(event, h2.events.ConnectionTerminated):
                closed = f"GOAWAY {event.error_code}"
        data = conn.data_to_send()
        if data:
            sock.sendall(data)
    sock.close()
    for sid in sorted(open_streams):
        failures.setdefault(sid, closed or "no answer in time")
    ok = 0
    for sid, (status, app) in sorted(done.items()):
        if status == "200":
            ok += 1
            print(f"ok {sid} {status} {app}")
        else:
            failures[sid] = f"status {status} from {app}"
    for sid, why in sorted(failures.items()):
        print(f"fail {sid} {why}")
    missing = args.streams - ok - len(failures)
    if missing > 0:
        print(f"fail - {missing} streams never sent ({closed or 'timeout'})")
    failed = len(failures) + max(missing, 0)
    print(f"summary ok={ok} fail={failed}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
