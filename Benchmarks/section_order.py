#!/usr/bin/env python3
"""Regenerates ProxyImage/needle-proxy.section-order: the sections of every function needle-proxy runs while
starting and serving the fixed-rate HTTP/1.1 load, for gold's --section-ordering-file. Laid out together,
the code the proxy runs fills few pages; scattered, each page fault maps 64 KiB of neighbours
(fault-around) and most of the binary becomes resident (Benchmarks/README.md). The proxy runs under
callgrind, which records every function executed. A stale file only makes the layout less tight: names
that no longer exist are ignored by the linker.

    sudo python3 Benchmarks/section_order.py --proxy .build-release-static/release/needle-proxy \\
        --init .build-release/release/needle-init
"""

import argparse, os, re, shutil, subprocess, sys, tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bench import APP_PORT, POD, Lab, PodNetwork, h2load  # noqa: E402

ROOT = os.path.dirname(HERE)


def executed_functions(callgrind_out):
    """Function names in the order callgrind first records them as executed (names are compressed: a
    name is spelled once, with its id, on whichever fn= or cfn= line comes first)."""
    names, executed, seen = {}, [], set()
    with open(callgrind_out) as f:
        for line in f:
            match = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
            if not match:
                continue
            kind, ident, name = match.groups()
            if name:
                names[ident] = name
            if kind == "fn" and ident not in seen:
                seen.add(ident)
                executed.append(ident)
    return [names[ident] for ident in executed if ident in names]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--proxy", required=True)
    parser.add_argument("--init", required=True)
    parser.add_argument("--out", default=os.path.join(ROOT, "ProxyImage", "needle-proxy.section-order"))
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="needle-order-")
    os.chmod(work, 0o777)
    # Valgrind cannot read the Swift release binary's DWARF; the symbol names are all it needs.
    stripped = os.path.join(work, "needle-proxy")
    shutil.copy(args.proxy, stripped)
    subprocess.run(["strip", "--strip-debug", stripped], check=True)
    profile = os.path.join(work, "callgrind.out")
    lab_args = argparse.Namespace(proxy=stripped, init=args.init)
    with PodNetwork("order") as net:
        lab = Lab(net, lab_args)
        lab.start_app()
        real = lab.proxy_binary
        wrapper = lab.write("under-callgrind.sh", f"#!/bin/sh\nif [ \"$1\" = await ]; then exec {real} \"$@\"; fi\n"
                                                   f"exec valgrind --tool=callgrind --callgrind-out-file={profile} {real} \"$@\"\n")
        os.chmod(wrapper, 0o755)
        lab.proxy_binary = wrapper
        lab.start_needle()
        h2load(net, f"http://{POD}:{APP_PORT}/", rate=200, connections=10, duration=10, warmup=1)
        lab.stop_needle()
    functions = executed_functions(profile)
    with open(args.out, "w") as f:
        f.writelines(f".text.{name}\n" for name in functions)
    print(f"{len(functions)} functions executed; wrote {args.out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
