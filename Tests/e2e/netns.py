"""A network-namespace harness for end-to-end tests that need real redirection.

PodNetwork builds three namespaces: "pod", "client" and "external". The pod is joined to each of the
others by its own veth pair:

    client 10.201.0.2  <-veth->  10.201.0.1 pod 10.202.0.1  <-veth->  10.202.0.2 external
    (and fd00:201::2 / fd00:201::1, fd00:202::1 / fd00:202::2 for IPv6)

It runs commands inside a namespace, optionally as another uid (setpriv), tracks every process it
starts, and tears everything down on exit, even after a failure. Only root can use it."""

import os, shutil, stat, subprocess, tempfile, time

_counter = 0


def have_root():
    return os.geteuid() == 0


class PodNetwork:
    POD_CLIENT_V4, CLIENT_V4 = "10.201.0.1", "10.201.0.2"
    POD_EXTERNAL_V4, EXTERNAL_V4 = "10.202.0.1", "10.202.0.2"
    POD_CLIENT_V6, CLIENT_V6 = "fd00:201::1", "fd00:201::2"
    POD_EXTERNAL_V6, EXTERNAL_V6 = "fd00:202::1", "fd00:202::2"

    def __init__(self, tag="t"):
        global _counter
        _counter += 1
        suffix = f"{os.getpid() % 100000}{_counter}"
        self.pod, self.client, self.external = (f"ndl-{tag}-{suffix}-{role}" for role in ("pod", "client", "ext"))
        self.links = [f"nd{suffix}c", f"nd{suffix}e"]  # interface names are limited to 15 characters
        self.processes = []
        self.created = []
        # A world-readable scratch dir: processes running as other uids must reach the helpers in it.
        self.scratch = tempfile.mkdtemp(prefix="needle-netns-")
        os.chmod(self.scratch, 0o755)

    def sh(self, *argv, check=True):
        return subprocess.run(argv, check=check, capture_output=True, text=True, timeout=30)

    def __enter__(self):
        try:
            for ns in (self.pod, self.client, self.external):
                self.sh("ip", "netns", "add", ns)
                self.created.append(ns)
                self.sh("ip", "-n", ns, "link", "set", "lo", "up")
            for link, peer_ns, pod_v4, peer_v4, pod_v6, peer_v6 in (
                (self.links[0], self.client, self.POD_CLIENT_V4, self.CLIENT_V4, self.POD_CLIENT_V6, self.CLIENT_V6),
                (self.links[1], self.external, self.POD_EXTERNAL_V4, self.EXTERNAL_V4, self.POD_EXTERNAL_V6, self.EXTERNAL_V6),
            ):
                self.sh("ip", "link", "add", link + "p", "netns", self.pod, "type", "veth", "peer", "name", link + "o",
                        "netns", peer_ns)
                for ns, dev, v4, v6 in ((self.pod, link + "p", pod_v4, pod_v6), (peer_ns, link + "o", peer_v4, peer_v6)):
                    self.sh("ip", "-n", ns, "addr", "add", f"{v4}/24", "dev", dev)
                    self.sh("ip", "-n", ns, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
                    self.sh("ip", "-n", ns, "link", "set", dev, "up")
            return self
        except BaseException:
            self.__exit__(None, None, None)
            raise

    def __exit__(self, *exc):
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        for ns in self.created:
            # Children the tracked processes left behind (nginx workers, daemons) die with their namespace.
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=30).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), 9)
                except (OSError, ValueError):
                    pass
            # Deleting a namespace removes its veth ends (and so their peers).
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
            # Files a test gave the namespace (`ip netns exec` mounts /etc/netns/<ns>/* over /etc).
            shutil.rmtree(f"/etc/netns/{ns}", ignore_errors=True)
        self.created = []
        shutil.rmtree(self.scratch, ignore_errors=True)
        return False

    def command(self, ns, argv, uid=None):
        prefix = ["ip", "netns", "exec", ns]
        if uid is not None:
            prefix += ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        return prefix + list(argv)

    def run(self, ns, argv, uid=None, timeout=30, input=None):
        return subprocess.run(self.command(ns, argv, uid), capture_output=True, text=True, timeout=timeout, input=input)

    def spawn(self, ns, argv, uid=None, ready_line=None, timeout=10):
        """Starts a process in `ns`; with ready_line, waits until it prints that line."""
        proc = subprocess.Popen(self.command(ns, argv, uid), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.processes.append(proc)
        if ready_line is not None:
            deadline = time.time() + timeout
            while time.time() < deadline:
                line = proc.stdout.readline()
                if line.strip() == ready_line:
                    return proc
                if not line and proc.poll() is not None:
                    break
            raise RuntimeError(f"{argv} did not print {ready_line!r} within {timeout} s")
        return proc

    def install(self, path):
        """Copies a helper into the world-readable scratch dir and returns its new path."""
        target = os.path.join(self.scratch, os.path.basename(path))
        shutil.copy(path, target)
        os.chmod(target, stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH | stat.S_IXUSR)
        return target
