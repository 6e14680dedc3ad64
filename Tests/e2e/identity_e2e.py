#!/usr/bin/env python3
"""End-to-end checks of needle-controller's identity service (DESIGN §7): trust anchor and issuer made
by openssl (an independent implementation), laid out like a mounted Secret; a local HTTPS stand-in for
the Kubernetes TokenReview API; certify calls made with openssl and curl exactly as the README shows.
Covers every refusal reason, a broken and a good issuer rotation, the metrics, TLS 1.3 only, the
controller's own TLS name, and graceful shutdown.

Prints one PASS/FAIL line per check; every process it starts is killed at the end, even on failure."""

import argparse, http.client, os, re, shutil, signal, subprocess, sys, tempfile, threading, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tools"))
from webhook_e2e import check, free_port, issue, make_ca, processes, results, run, wait_for  # noqa: E402
from token_review_api import TokenReviews, serve  # noqa: E402
from cluster_api import ClusterObjects  # noqa: E402
from destination_checks import destinations  # noqa: E402

TRUST_DOMAIN = "cluster.local"
CONTROLLER_NAME = f"needle-controller.needle.serviceaccount.identity.needle.{TRUST_DOMAIN}"
AUDIENCE = "identity.needle.dev"


def tls_name(ns, sa):
    return f"{sa}.{ns}.serviceaccount.identity.needle.{TRUST_DOMAIN}"


def spiffe(ns, sa):
    return f"spiffe://{TRUST_DOMAIN}/ns/{ns}/sa/{sa}"


def make_issuer(work, anchor_key, anchor, name):
    """An intermediate CA signed by the anchor, as cert-manager or `needle install` would make it."""
    key, csr, crt, ext = (os.path.join(work, f"{name}.{e}") for e in ("key", "csr", "crt", "ext"))
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n")
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
         "-subj", f"/CN={name}"])
    run(["openssl", "x509", "-req", "-in", csr, "-CA", anchor, "-CAkey", anchor_key, "-CAcreateserial", "-out", crt,
         "-days", "1", "-extfile", ext])
    return crt, key


def publish(secret_dir, files, version):
    """Lays files out like a kubelet-mounted Secret and swaps ..data atomically."""
    data_dir = os.path.join(secret_dir, f"..{version}")
    os.makedirs(data_dir)
    for name, source in files.items():
        if isinstance(source, bytes):
            with open(os.path.join(data_dir, name), "wb") as f:
                f.write(source)
        else:
            shutil.copy(source, os.path.join(data_dir, name))
    tmp_link = os.path.join(secret_dir, "..data_tmp")
    os.symlink(f"..{version}", tmp_link)
    os.replace(tmp_link, os.path.join(secret_dir, "..data"))
    for name in files:
        link = os.path.join(secret_dir, name)
        if not os.path.islink(link):
            os.symlink(os.path.join("..data", name), link)


def make_csr(work, name, sans):
    """The README's openssl line: a P-256 key and a CSR asking for `sans`."""
    key, csr = os.path.join(work, f"{name}.key"), os.path.join(work, f"{name}.csr")
    run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
         "-out", csr, "-subj", "/", "-addext", "subjectAltName=" + ",".join(sans)])
    return csr


def certify(port, anchors, csr_path=None, token=None, body=None, content_type="application/pkcs10"):
    """The README's curl line; returns (status, body)."""
    out = tempfile.mktemp()
    argv = ["curl", "-sS", "--max-time", "15", "-o", out, "-w", "%{http_code}", "--cacert", anchors,
            "--resolve", f"{CONTROLLER_NAME}:{port}:127.0.0.1", f"https://{CONTROLLER_NAME}:{port}/v1/certify",
            "-H", f"Content-Type: {content_type}"]
    if token is not None:
        argv += ["-H", f"Authorization: Bearer {token}"]
    if csr_path:
        argv += ["--data-binary", f"@{csr_path}"]
    elif body is not None:
        data = os.path.join(tempfile.gettempdir(), f"needle-body-{time.time_ns()}")
        with open(data, "wb") as f:
            f.write(body)
        argv += ["--data-binary", f"@{data}"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    text = open(out).read() if os.path.exists(out) else ""
    if os.path.exists(out):
        os.remove(out)
    try:
        return int(result.stdout.strip() or 0), text
    except ValueError:
        return 0, result.stderr


def split_chain(pem):
    return re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----\n?", pem, re.S)


def x509_text(pem):
    return subprocess.run(["openssl", "x509", "-noout", "-text"], input=pem, capture_output=True, text=True, timeout=30).stdout


def admin_get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


class Controller:
    def __init__(self, binary, args, log_path):
        self.port, self.admin, self.destinations = free_port(), free_port(), free_port()
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen([binary, "--identity-listen", f"127.0.0.1:{self.port}", "--admin-listen", f"127.0.0.1:{self.admin}",
                                      "--destination-listen", f"127.0.0.1:{self.destinations}", *args],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        processes.append(self.proc)

    def wait_ready(self, seconds=20):
        def state():
            if self.proc.poll() is not None:
                return "exited"
            try:
                return "ready" if admin_get(self.admin, "/ready")[0] == 200 else None
            except OSError:
                return None

        return wait_for(state, seconds) == "ready"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--controller", required=True)
    args = parser.parse_args()
    binary = os.path.abspath(args.controller)
    work = tempfile.mkdtemp(prefix="needle-identity-e2e-")
    server = None
    try:
        anchor_key, anchor = make_ca(work)
        issuer1 = make_issuer(work, anchor_key, anchor, "issuer-1")
        issuer2 = make_issuer(work, anchor_key, anchor, "issuer-2")
        api_crt, api_key = issue(work, anchor_key, anchor, "api")
        secret = os.path.join(work, "issuer")
        os.makedirs(secret)
        publish(secret, {"tls.crt": issuer1[0], "tls.key": issuer1[1], "ca.crt": anchor}, "v1")
        bundle = os.path.join(work, "ca-bundle.crt")
        shutil.copy(anchor, bundle)

        api = TokenReviews("controller-token", tokens={
            "web-token": ("system:serviceaccount:shop:web", [AUDIENCE]),
            "db-token": ("system:serviceaccount:shop:db", [AUDIENCE]),
            "api-audience-token": ("system:serviceaccount:shop:web", ["https://kubernetes.default.svc"])})
        token_file = os.path.join(work, "controller-token")
        with open(token_file, "w") as f:
            f.write("controller-token\n")
        cluster = ClusterObjects()
        server = serve(api, "127.0.0.1", 0, api_crt, api_key, cluster)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        api_port = server.server_address[1]

        common = ["--trust-anchors", bundle, "--issuer-cert", os.path.join(secret, "tls.crt"),
                  "--issuer-key", os.path.join(secret, "tls.key"), "--trust-domain", TRUST_DOMAIN,
                  "--kube-api-server", f"https://127.0.0.1:{api_port}", "--kube-ca-file", anchor, "--kube-token-file", token_file]

        # A foreign issuer is refused at start, with the reason.
        foreign_dir = os.path.join(work, "foreign")
        os.makedirs(foreign_dir)
        _, foreign = make_ca(foreign_dir)
        bad = Controller(binary, [a if a != bundle else foreign for a in common], os.path.join(work, "bad.log"))
        try:
            bad.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        bad.stop()
        log = open(bad.log_path).read()
        check("an issuer no trust anchor signed stops the controller at start, saying why",
              bad.proc.returncode not in (0, None) and "not signed by any of the 1 trust anchors" in log, log[-300:])

        ctl = Controller(binary, common + ["--certificate-lifetime", "1h", "--issuer-check-interval", "1"], os.path.join(work, "controller.log"))
        try:
            check("the controller becomes ready; /live answers", ctl.wait_ready() and admin_get(ctl.admin, "/live")[0] == 200)
            exercise(ctl, api, work, bundle, anchor, secret, issuer1, issuer2)
            destinations(ctl.destinations, anchor, CONTROLLER_NAME, cluster, work, issuer2[0], issuer2[1])
        finally:
            ctl.stop()
            check("SIGTERM stops the controller cleanly", ctl.proc.returncode == 0, ctl.proc.returncode)
    finally:
        if server:
            server.shutdown()
        for p in processes:
            if p.poll() is None:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)
    failed = results.count(False)
    print(f"identity e2e: {results.count(True)} passed, {failed} failed")
    sys.exit(1 if failed else 0)


def exercise(ctl, api, work, bundle, anchor, secret, issuer1, issuer2):
    web_sans = [f"DNS:{tls_name('shop', 'web')}", f"URI:{spiffe('shop', 'web')}"]
    csr = make_csr(work, "web", web_sans)
    status, body = certify(ctl.port, bundle, csr, token="web-token")
    chain = split_chain(body)
    check("certify: a good token and CSR get the leaf and the issuer (PEM chain)", status == 200 and len(chain) == 2, (status, body[:200]))
    if len(chain) == 2:
        leaf_text = x509_text(chain[0])
        check("the leaf carries exactly the workload's DNS and URI names",
              f"DNS:{tls_name('shop', 'web')}" in leaf_text and f"URI:{spiffe('shop', 'web')}" in leaf_text
              and leaf_text.count("DNS:") == 1 and leaf_text.count("URI:") == 1, leaf_text[-600:])
        check("the leaf is for client and server authentication and is no CA",
              "TLS Web Server Authentication, TLS Web Client Authentication" in leaf_text and "CA:FALSE" in leaf_text)
        leaf_path, issuer_path = os.path.join(work, "leaf.pem"), os.path.join(work, "chain-issuer.pem")
        open(leaf_path, "w").write(chain[0])
        open(issuer_path, "w").write(chain[1])
        verified = subprocess.run(["openssl", "verify", "-CAfile", anchor, "-untrusted", issuer_path, leaf_path],
                                  capture_output=True, text=True, timeout=30)
        check("openssl verifies the chain to the trust anchor", verified.returncode == 0, verified.stdout + verified.stderr)
        dates = subprocess.run(["openssl", "x509", "-noout", "-startdate", "-enddate", "-dateopt", "iso_8601", "-in", leaf_path],
                               capture_output=True, text=True, timeout=30).stdout
        check("the lifetime is --certificate-lifetime (1h), backdated a little for clock skew", lifetime_ok(dates), dates)

    status, body = certify(ctl.port, bundle, csr, token=None)
    check("no token: 401 token_refused", status == 401 and body.startswith("token_refused: "), (status, body))
    status, body = certify(ctl.port, bundle, csr, token="stolen-token")
    check("a token the API does not authenticate: 401 token_refused", status == 401 and body.startswith("token_refused: "), (status, body))
    status, body = certify(ctl.port, bundle, csr, token="api-audience-token")
    check("a token for another audience: 401 token_refused", status == 401 and body.startswith("token_refused: "), (status, body))
    status, body = certify(ctl.port, bundle, csr, token="db-token")
    check("a CSR for another workload's names: 403 wrong_identity", status == 403 and body.startswith("wrong_identity: "), (status, body))
    calls = api.calls
    status, body = certify(ctl.port, bundle, body=b"-----BEGIN CERTIFICATE REQUEST-----\ngarbage\n-----END CERTIFICATE REQUEST-----\n",
                           token="web-token")
    check("a malformed CSR: 400 bad_csr, and the API is not asked", status == 400 and body.startswith("bad_csr: ") and api.calls == calls,
          (status, body))
    extra = make_csr(work, "extra", web_sans + ["DNS:evil.example.com"])
    status, body = certify(ctl.port, bundle, extra, token="web-token")
    check("a CSR asking for an extra name: 400 bad_csr", status == 400 and body.startswith("bad_csr: "), (status, body))
    status, body = certify(ctl.port, bundle, body=b"A" * 100_000, token="web-token")
    check("an oversized body: 413 bad_csr", status == 413 and body.startswith("bad_csr: "), (status, body))
    status, body = certify(ctl.port, bundle, csr, token="web-token", content_type="application/json")
    check("the wrong content type: 415 bad_csr", status == 415 and body.startswith("bad_csr: "), (status, body))

    tls12 = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{ctl.port}", "-tls1_2", "-servername", CONTROLLER_NAME],
                           input="", capture_output=True, text=True, timeout=30)
    check("the identity API speaks TLS 1.3 only (a TLS 1.2 handshake fails)", tls12.returncode != 0, tls12.stdout[-300:])
    served = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{ctl.port}", "-servername", CONTROLLER_NAME, "-showcerts"],
                            input="", capture_output=True, text=True, timeout=30).stdout
    served_leaf = split_chain(served)[0] if split_chain(served) else ""
    served_text = x509_text(served_leaf)
    check("the controller serves a certificate it issued itself for its TLS name and SPIFFE ID",
          f"DNS:{CONTROLLER_NAME}" in served_text and f"URI:spiffe://{TRUST_DOMAIN}/ns/needle/sa/needle-controller" in served_text,
          served_text[-400:])

    status, body = certify(ctl.port, bundle, csr, token="web-token")
    check("after every refusal the service still certifies", status == 200, status)

    # Issuer rotation: a half-written key is refused and the old issuer keeps signing; a good pair is taken.
    publish(secret, {"tls.crt": issuer2[0], "tls.key": open(issuer2[1], "rb").read()[:60], "ca.crt": anchor}, "v2")
    # Wait until the controller has counted the refused load (it checks every 1 s), not a fixed sleep, so
    # the good pair below is published only after the broken one was seen.
    refused_loads = lambda: metric(admin_get(ctl.admin, "/metrics")[1], 'needle_controller_issuer_loads_total{result="failure"}') or 0
    refused = wait_for(refused_loads, 15, 0.2, done=lambda count: count >= 1)
    status, body = certify(ctl.port, bundle, csr, token="web-token")
    check("a broken issuer update is refused: the old issuer still signs",
          status == 200 and "issuer-1" in x509_text(split_chain(body)[0] if split_chain(body) else "").split("Issuer:")[-1].split("\n")[0],
          f"refused loads counted: {refused}; {body[:120]}")
    publish(secret, {"tls.crt": issuer2[0], "tls.key": issuer2[1], "ca.crt": anchor}, "v3")

    def signed_by_issuer_2():
        status, body = certify(ctl.port, bundle, csr, token="web-token")
        leaf = split_chain(body)[0] if status == 200 and split_chain(body) else ""
        return "issuer-2" in x509_text(leaf).split("Issuer:")[-1].split("\n")[0]

    check("a good issuer update is taken without a restart", wait_for(signed_by_issuer_2, 10, 0.5))

    # Kubernetes API down: the controller says so (503 error) and keeps serving.
    saved, api.controller_token = api.controller_token, "rotated-elsewhere"
    status, body = certify(ctl.port, bundle, csr, token="web-token")
    check("the TokenReview API refusing the controller: 503 error", status == 503 and body.startswith("error: "), (status, body))
    api.controller_token = saved

    _, text = admin_get(ctl.admin, "/metrics")
    counts = {r: metric(text, f'needle_controller_certify_total{{result="{r}"}}') for r in
              ("ok", "token_refused", "bad_csr", "wrong_identity", "error")}
    check("certify results are counted by reason", counts["ok"] and counts["ok"] >= 4 and counts["token_refused"] == 3
          and counts["bad_csr"] == 4 and counts["wrong_identity"] == 1 and counts["error"] == 1, counts)
    check("issuer expiry, serving certificate expiry and TokenReview latency are exported",
          (metric(text, "needle_controller_issuer_expiry_timestamp_seconds") or 0) > time.time()
          and (metric(text, "needle_controller_serving_certificate_expiry_timestamp_seconds") or 0) > time.time()
          and "needle_controller_token_review_duration_seconds_bucket" in text, text[:600])
    log = open(ctl.log_path).read()
    check("refusals are logged with their reason", "certify refused" in log and "wrong_identity" in log and "issuer update refused" in log)


def lifetime_ok(dates):
    import datetime
    found = re.findall(r"=(\S+ \S+Z?)", dates)
    if len(found) != 2:
        return False
    parse = lambda s: datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))
    start, end = (parse(s) for s in found)
    now = datetime.datetime.now(datetime.timezone.utc)
    return 3590 <= (end - start).total_seconds() <= 3700 and start < now


if __name__ == "__main__":
    main()
