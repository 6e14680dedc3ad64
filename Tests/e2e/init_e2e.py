#!/usr/bin/env python3
"""needle-init applied for real in a network namespace, checked with real traffic (DESIGN §3.5, issue 3):
(a) inbound redirect with the original destination, (b) outbound redirect from an app uid,
(c) the proxy uid not redirected, (d) ignored ports and subnets, (e) loopback untouched,
(f) a second run changes nothing, (g) --cleanup restores the original table, (h) --dry-run changes
nothing; bad arguments exit 64 and change nothing; legacy backend; IPv6; JSON logs.
Needs root (network namespaces, iptables): without it, prints SKIP and exits 0."""

import argparse, json, os, re, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from netns import PodNetwork, have_root  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
results = []
APP_UID, PROXY_UID = 1000, 2102


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(("PASS " if ok else "FAIL ") + name + ("" if ok or not detail else ": " + str(detail)[:400]), flush=True)


def normalized(save_output):
    """iptables-save without its timestamp comments and packet counters."""
    lines = [l for l in save_output.splitlines() if not l.startswith("#")]
    return "\n".join(re.sub(r"\[\d+:\d+\]", "[0:0]", l) for l in lines)


class Scenario:
    def __init__(self, net, init_binary, probe):
        self.net, self.init, self.probe = net, init_binary, probe

    def save(self, backend="nft", v6=False):
        tool = f"{'ip6tables' if v6 else 'iptables'}-{backend}-save"
        return normalized(self.net.run(self.net.pod, [tool, "-t", "nat"]).stdout)

    def needle_init(self, *args):
        return self.net.run(self.net.pod, [self.init, *args])

    def listen(self, ns, bind, port, name):
        self.net.spawn(ns, ["/usr/bin/python3", self.probe, "serve", "--bind", bind, "--port", str(port), "--name", name],
                       ready_line="ready")

    def connect(self, ns, host, port, uid=None):
        out = self.net.run(ns, ["/usr/bin/python3", self.probe, "connect", "--host", host, "--port", str(port)], uid=uid)
        return out.stdout.strip()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--init", required=True)
    args = parser.parse_args()
    if not have_root():
        print("SKIP needle-init end-to-end: needs root for network namespaces and iptables (CI runs as root)")
        return 0
    for tool in ("iptables-nft-restore", "iptables-legacy-restore", "ip6tables-nft-restore", "setpriv"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            check(f"tool {tool} is installed", False, "install iptables and util-linux")
            return 1

    with PodNetwork("init") as net:
        s = Scenario(net, net.install(os.path.abspath(args.init)), net.install(os.path.join(HERE, "tools", "tcp_probe.py")))
        pod, client, ext = net.pod, net.client, net.external
        s.listen(pod, "0.0.0.0", 4143, "inbound-proxy")
        s.listen(pod, "127.0.0.1", 4140, "outbound-proxy")
        s.listen(pod, "0.0.0.0", 8080, "app")
        s.listen(pod, "0.0.0.0", 9999, "app-ignored-port")
        s.listen(pod, "127.0.0.1", 7000, "loopback-app")
        s.listen(ext, "0.0.0.0", 9090, "external")
        s.listen(ext, "0.0.0.0", 5432, "external-db")
        s.listen(pod, "::", 4143, "inbound-proxy-v6")
        s.listen(pod, "::1", 4140, "outbound-proxy-v6")
        s.listen(pod, "::", 8080, "app-v6")
        s.listen(ext, "::", 9090, "external-v6")

        original = s.save()
        check("before needle-init, a client reaches the app directly", s.connect(client, PodNetwork.POD_CLIENT_V4, 8080).startswith("app "))

        base = ["--inbound-proxy-port", "4143", "--outbound-proxy-port", "4140", "--proxy-uid", str(PROXY_UID),
                "--inbound-ports-to-ignore", "4191,9999", "--outbound-ports-to-ignore", "5432"]

        dry = s.needle_init(*base, "--dry-run")
        check("(h) --dry-run prints the restore input of both families and exits 0",
              dry.returncode == 0 and "*nat" in dry.stdout and "-A NEEDLE_INBOUND" in dry.stdout
              and "(IPv4)" in dry.stdout and "(IPv6)" in dry.stdout, dry.stdout + dry.stderr)
        check("(h) --dry-run changes nothing", s.save() == original and "NEEDLE" not in s.save("nft", v6=True))

        bad = s.needle_init("--inbound-proxy-port", "0", "--subnets-to-ignore", "10.0.0.1/8", "--proxy-uid", "x")
        check("bad arguments exit 64 with one line per problem",
              bad.returncode == 64 and len([l for l in bad.stderr.splitlines() if l.startswith("needle-init:")]) == 3,
              f"exit {bad.returncode}: {bad.stderr}")
        check("bad arguments leave the namespace untouched", s.save() == original)

        applied = s.needle_init(*base)
        check("needle-init applies the rules and exits 0", applied.returncode == 0, applied.stderr)
        check("the log names the backend and the rules applied", "backend=iptables-nft" in applied.stderr and "NEEDLE_OUTBOUND" in applied.stderr,
              applied.stderr)
        check("dual-stack: one run applies the IPv4 and the IPv6 plan", "backend=ip6tables-nft" in applied.stderr
              and "NEEDLE_INBOUND" in s.save("nft", v6=True), applied.stderr)
        reply = s.connect(client, PodNetwork.POD_CLIENT_V6, 8080)
        check("dual-stack: IPv6 inbound lands on the inbound proxy port with the original destination",
              reply.startswith("inbound-proxy-v6 ") and f"orig=[{PodNetwork.POD_CLIENT_V6}]:8080" in reply, reply)
        reply = s.connect(pod, PodNetwork.EXTERNAL_V6, 9090, uid=APP_UID)
        check("dual-stack: IPv6 outbound from an app uid lands on [::1]:4140 with the original destination",
              reply.startswith("outbound-proxy-v6 ") and f"orig=[{PodNetwork.EXTERNAL_V6}]:9090" in reply, reply)
        reply = s.connect(pod, PodNetwork.EXTERNAL_V6, 9090, uid=PROXY_UID)
        check("dual-stack: the proxy uid's IPv6 connection is not redirected", reply.startswith("external-v6 "), reply)

        reply = s.connect(client, PodNetwork.POD_CLIENT_V4, 8080)
        check("(a) a client's connection to the pod IP lands on the inbound proxy port with the original destination",
              reply.startswith("inbound-proxy ") and f"orig={PodNetwork.POD_CLIENT_V4}:8080" in reply, reply)
        reply = s.connect(pod, PodNetwork.EXTERNAL_V4, 9090, uid=APP_UID)
        check("(b) an app uid's outbound connection lands on 127.0.0.1:4140 with the original destination",
              reply.startswith("outbound-proxy ") and f"orig={PodNetwork.EXTERNAL_V4}:9090" in reply, reply)
        reply = s.connect(pod, PodNetwork.EXTERNAL_V4, 9090, uid=PROXY_UID)
        check("(c) the proxy uid's connection is not redirected", reply.startswith("external "), reply)
        reply = s.connect(client, PodNetwork.POD_CLIENT_V4, 9999)
        check("(d) an ignored inbound port reaches the app directly", reply.startswith("app-ignored-port "), reply)
        reply = s.connect(client, PodNetwork.POD_CLIENT_V4, 4191)
        check("(d) the admin port 4191 is never redirected", "inbound-proxy" not in reply, reply)
        reply = s.connect(pod, PodNetwork.EXTERNAL_V4, 5432, uid=APP_UID)
        check("(d) an ignored outbound port goes out directly", reply.startswith("external-db "), reply)
        reply = s.connect(pod, "127.0.0.1", 7000, uid=APP_UID)
        check("(e) loopback traffic is not redirected", reply.startswith("loopback-app "), reply)

        first = s.save()
        again = s.needle_init(*base)
        check("(f) running needle-init twice leaves iptables-save -t nat identical",
              again.returncode == 0 and s.save() == first, again.stderr)

        with_subnet = s.needle_init(*base, "--subnets-to-ignore", "10.202.0.0/24", "--log-format", "json")
        reply = s.connect(pod, PodNetwork.EXTERNAL_V4, 9090, uid=APP_UID)
        check("(d) an ignored subnet goes out directly (a re-run replaces the rules)",
              with_subnet.returncode == 0 and reply.startswith("external "), reply + with_subnet.stderr)
        try:
            logged = [json.loads(l) for l in with_subnet.stderr.splitlines() if l.strip()]
            json_ok = any(entry.get("msg") == "applied" and entry.get("rules") for entry in logged)
        except ValueError:
            json_ok = False
        check("--log-format json logs one JSON object per line", json_ok, with_subnet.stderr)

        cleaned = s.needle_init("--cleanup")
        check("(g) --cleanup restores the namespace's original rules", cleaned.returncode == 0 and s.save() == original,
              cleaned.stderr + s.save())
        check("(g) after cleanup a client reaches the app directly again",
              s.connect(client, PodNetwork.POD_CLIENT_V4, 8080).startswith("app "))

        legacy = s.needle_init(*base, "--iptables-mode", "legacy")
        reply = s.connect(client, PodNetwork.POD_CLIENT_V4, 8080)
        check("--iptables-mode legacy applies through iptables-legacy",
              legacy.returncode == 0 and "NEEDLE_INBOUND" in s.save("legacy") and reply.startswith("inbound-proxy "),
              legacy.stderr + reply)
        s.needle_init("--cleanup", "--iptables-mode", "legacy")
        check("legacy cleanup removes the legacy rules", "NEEDLE" not in s.save("legacy"))

        cleaned = s.needle_init("--cleanup")
        check("--cleanup removes the ip6tables rules too", cleaned.returncode == 0 and "NEEDLE" not in s.save("nft", v6=True),
              cleaned.stderr)
        v4_only = s.needle_init(*base, "--ipv6", "off")
        check("--ipv6 off applies IPv4 only and says so", v4_only.returncode == 0 and "NEEDLE" not in s.save("nft", v6=True)
              and "NEEDLE_INBOUND" in s.save() and "IPv6 traffic is not redirected" in v4_only.stderr, v4_only.stderr)
        s.needle_init("--cleanup")

        # ip6tables unusable on a pod with IPv6 addresses: only the IPv4 tools on PATH.
        v4_tools = os.path.join(net.scratch, "v4-tools")
        os.makedirs(v4_tools, exist_ok=True)
        for tool in ("iptables-nft-save", "iptables-nft-restore", "iptables-legacy-save", "iptables-legacy-restore"):
            path = subprocess.run(["which", tool], capture_output=True, text=True).stdout.strip()
            if path and not os.path.exists(os.path.join(v4_tools, tool)):
                os.symlink(path, os.path.join(v4_tools, tool))
        before = s.save()
        no_ip6 = subprocess.run(["ip", "netns", "exec", pod, "env", f"PATH={v4_tools}", s.init, *base],
                                capture_output=True, text=True, timeout=30)
        check("IPv6 addresses but no usable ip6tables: needle-init fails, says why and changes nothing",
              no_ip6.returncode != 0 and "ip6tables is unusable" in no_ip6.stderr and s.save() == before,
              no_ip6.stderr)

        # A network namespace with loopback only: no IPv6 on the pod network, IPv4 rules only.
        lone = subprocess.run(["unshare", "--net", "sh", "-c", f"ip link set lo up && {s.init} " + " ".join(base)
                               + " && ip6tables-nft-save -t nat"], capture_output=True, text=True, timeout=30)
        check("a pod network without IPv6 gets IPv4 rules only, and the log says so",
              lone.returncode == 0 and "no IPv6 address on the pod network" in lone.stderr and "NEEDLE" not in lone.stdout,
              lone.stdout + lone.stderr)

        failing = subprocess.run(["ip", "netns", "exec", pod, "env", "PATH=/nonexistent", s.init, *base],
                                 capture_output=True, text=True, timeout=30)
        check("without any iptables backend needle-init fails non-zero and says why",
              failing.returncode != 0 and "no usable iptables backend" in failing.stderr, failing.stderr)

    failed = results.count(False)
    print(f"needle-init e2e: {results.count(True)} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
