"""A network-namespace harness for a small cluster: one "node" namespace acting as the router, and one
namespace per pod, each joined to the node by its OWN veth pair and subnet (no bridge), so all traffic
between pods is routed through the node, where a kube-proxy stand-in (iptables DNAT) can sit:

    pod i 10.210.i.2/24 (default via 10.210.i.1)  <-veth->  10.210.i.1 node (ip_forward=1, also 10.210.0.1)

The node's own address for services (the controller, the API, DNS) is NODE_IP on its loopback, reachable
from every pod through its default route. Built on netns.PodNetwork: the same run / spawn / install, and
the same teardown (every tracked process killed, then every namespace deleted with whatever it still
runs, /etc/netns/<ns> removed), even after a failure. Interface names stay within 15 characters and are
unique per run. Only root can use it."""

import os, subprocess

import netns
from netns import PodNetwork


class MeshNetwork(PodNetwork):
    NODE_IP = "10.210.0.1"

    def __init__(self, pods, tag="mesh"):
        """`pods`: the pods' short names (letters and digits), in order; pod i (from 1) gets 10.210.i.0/24."""
        super().__init__(tag)
        suffix = f"{os.getpid() % 100000:05d}{netns._counter % 10}"
        self.node = f"ndl-{tag}-{suffix}-node"
        self.names = list(pods)
        self.ns = {name: f"ndl-{tag}-{suffix}-{name}" for name in self.names}
        self.ip = {name: f"10.210.{i}.2" for i, name in enumerate(self.names, 1)}
        self.gateway = {name: f"10.210.{i}.1" for i, name in enumerate(self.names, 1)}
        self.node_link = {name: f"nm{suffix}{i}n" for i, name in enumerate(self.names, 1)}  # the node's end
        self.pod_link = {name: f"nm{suffix}{i}p" for i, name in enumerate(self.names, 1)}   # the pod's end
        # PodNetwork's own three namespaces are not made here; Pod.metrics-style helpers look for these.
        self.pod = self.client = self.external = None

    def __enter__(self):
        try:
            for ns in [self.node] + [self.ns[name] for name in self.names]:
                self.sh("ip", "netns", "add", ns)
                self.created.append(ns)
                self.sh("ip", "-n", ns, "link", "set", "lo", "up")
            self.sh("ip", "-n", self.node, "addr", "add", f"{self.NODE_IP}/32", "dev", "lo")
            self.sh("ip", "netns", "exec", self.node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
            for name in self.names:
                node_end, pod_end = self.node_link[name], self.pod_link[name]
                self.sh("ip", "link", "add", node_end, "netns", self.node, "type", "veth", "peer", "name", pod_end,
                        "netns", self.ns[name])
                self.sh("ip", "-n", self.node, "addr", "add", f"{self.gateway[name]}/24", "dev", node_end)
                self.sh("ip", "-n", self.ns[name], "addr", "add", f"{self.ip[name]}/24", "dev", pod_end)
                self.sh("ip", "-n", self.node, "link", "set", node_end, "up")
                self.sh("ip", "-n", self.ns[name], "link", "set", pod_end, "up")
                self.sh("ip", "-n", self.ns[name], "route", "add", "default", "via", self.gateway[name])
            return self
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def resolv_conf(self, name, nameserver):
        """The pod's /etc/resolv.conf, as `ip netns exec` mounts it (write before starting what reads it)."""
        os.makedirs(f"/etc/netns/{self.ns[name]}", exist_ok=True)
        with open(f"/etc/netns/{self.ns[name]}/resolv.conf", "w") as f:
            f.write(f"search shop.svc.cluster.local svc.cluster.local cluster.local\nnameserver {nameserver}\noptions ndots:5\n")

    def spawn_logged(self, ns, argv, log_path, uid=None, stdin=None):
        """Starts a tracked process whose output goes to a file (a busy proxy must never block on a full pipe)."""
        log = open(log_path, "ab")
        proc = subprocess.Popen(self.command(ns, argv, uid), stdout=log, stderr=subprocess.STDOUT, stdin=stdin)
        log.close()
        self.processes.append(proc)
        return proc
