#!/usr/bin/env python3
"""needle-injector under hostile input, end to end over real HTTPS on loopback (the set-up of webhook_e2e.py:
a test CA and serving certificate made by openssl, the injector started with --namespaces).

Groups:
 1. JSON nested 100,000 levels deep (at the top of the body, in the pod's annotations map, in a field the
    injector does not read): 400, never a crash, and the next good review is still answered.
 2. A 3.9 MiB review with 5,000 containers: answered correctly, and within --time-limit seconds.
 3. Duplicate keys, invalid UTF-8, out-of-range numbers and wrong JSON types in the pod: a clean 400 or a
    patch that applies (python jsonpatch) and yields a pod with the sidecar, never a crash, a 5xx or a patch
    that does not apply. Duplicate keys are judged as the API server reads them: Go's encoding/json (and
    Python's json) keep the LAST of duplicate keys, so the patch is applied to the pod as parsed that way.
 4. 100 TLS handshakes that never finish do not stop service, and the server closes them.
 5. RSS and open descriptors are flat between 100 and 1,000 reviews on one keep-alive connection.
 6. Two reviews in one TCP write (pipelined HTTP/1.1) are both answered, in order.
 7. Classic and native mode: every list or map the patch adds into is created whole when it is null or
    missing (or the review is refused with 400); a `spec` that is not an object is 400.

Prints one PASS/FAIL line per check (check() of webhook_e2e) and exits non-zero if any failed. A crashed
injector is reported by the check that crashed it and restarted, so the checks after it still mean something.
Every socket has a timeout, every loop a bound in count and time, a watchdog ends the run after SUITE_LIMIT
seconds, and every process started is killed on the way out."""

import argparse, base64, copy, http.client, json, os, select, shutil, signal, socket, ssl, statistics, sys, tempfile, threading, time, \
    traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from webhook_e2e import Injector, check, issue, make_ca, processes, read_example, results, tls_context  # noqa: E402

try:
    import jsonpatch
except ImportError:  # .ci/run installs it; say so plainly rather than failing every patch check obscurely
    jsonpatch = None

SUITE_LIMIT = 540  # .ci/run gives each e2e script 600 s
PROXY, INIT = "needle-proxy", "needle-init"
DEPTH = 100_000
HEADER_TIMEOUT = 3  # --header-timeout: also the deadline of a TLS handshake
NAMESPACES = """apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Namespace
  metadata:
    name: demo
    annotations:
      needle.dev/inject: enabled
- apiVersion: v1
  kind: Namespace
  metadata:
    name: classic
    annotations:
      needle.dev/inject: enabled
      config.needle.dev/native-sidecar: "false"
- apiVersion: v1
  kind: Namespace
  metadata:
    name: plain
"""
MODE_NAMESPACE = {"native": "demo", "classic": "classic"}


class SuiteStopped(BaseException):
    """Raised by the watchdog; a BaseException so no `except Exception` swallows it."""


def short(value, limit=300):
    text = (value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)).strip()
    return text if len(text) <= limit else text[:limit] + f"...(+{len(text) - limit} chars)"


# --- the injector, restarted when a check crashes it ------------------------------------------------------

class Server:
    def __init__(self, binary, args, work):
        self.binary, self.args, self.work = binary, args, work
        self.count = 0
        self.start()

    def start(self):
        self.count += 1
        self.log_path = os.path.join(self.work, f"injector-{self.count}.log")
        self.inj = Injector(self.binary, self.args, self.log_path)

    @property
    def port(self):
        return self.inj.port

    @property
    def pid(self):
        return self.inj.proc.pid

    def alive(self):
        return self.inj.proc.poll() is None

    def crash_report(self):
        """None while the injector runs; else its exit status and log tail, after starting a fresh one."""
        if self.alive():
            return None
        code = self.inj.proc.returncode
        self.inj.log.close()
        with open(self.log_path, errors="replace") as f:
            tail = f.read()[-400:]
        self.start()
        return f"injector died (exit status {code}); log tail: {tail!r}"

    def stop(self):
        self.inj.stop()


# --- reviews ----------------------------------------------------------------------------------------------

TEMPLATE = json.loads(read_example("pod.json"))
_uid_counter = [0]


def next_uid(tag="hostile"):
    _uid_counter[0] += 1
    return f"{tag}-{_uid_counter[0]:06d}"


def base_pod():
    return copy.deepcopy(TEMPLATE["request"]["object"])


def review(pod, namespace="demo", uid=None):
    """An AdmissionReview (dict) for `pod` (any JSON value) in `namespace`."""
    r = copy.deepcopy(TEMPLATE)
    r["request"]["uid"] = uid or next_uid()
    r["request"]["namespace"] = namespace
    if isinstance(pod, dict) and isinstance(pod.get("metadata"), dict):
        pod["metadata"]["namespace"] = namespace
    r["request"]["object"] = pod
    return r


def raw_review(pod, namespace="demo", raw=None):
    """Review bytes with raw JSON text spliced in: every string value "@@NAME@@" in `pod` becomes raw[NAME]
    verbatim (for duplicate keys, invalid UTF-8, numbers Python would not print, deep nesting)."""
    r = review(pod, namespace)
    text = json.dumps(r).encode()
    for name, fragment in (raw or {}).items():
        marker = json.dumps(f"@@{name}@@").encode()
        assert text.count(marker) == 1, name
        text = text.replace(marker, fragment)
    return r["request"]["uid"], text


def as_api_server_reads(body):
    """The pod as Go's encoding/json would read the body: invalid UTF-8 replaced by U+FFFD, the LAST of
    duplicate keys kept (Python's json does both the same way). None if it is not JSON."""
    try:
        return json.loads(body.decode("utf-8", "replace"))["request"]["object"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None


def connection(server, ctx, timeout=20):
    return http.client.HTTPSConnection("localhost", server.port, context=ctx, timeout=timeout)


def send(server, ctx, body, timeout=20, conn=None):
    """(status or None, response body or error text, seconds); never raises for network trouble."""
    own = conn is None
    conn = conn or connection(server, ctx, timeout)
    start = time.monotonic()
    try:
        conn.request("POST", "/inject", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        return r.status, data, time.monotonic() - start
    except (OSError, http.client.HTTPException, ssl.SSLError) as error:
        return None, f"connection error: {error!r}", time.monotonic() - start
    finally:
        if own:
            conn.close()


def good_review_ok(server, ctx):
    """The follow-up every hostile input is judged by: the process is alive and pod.json gets 200."""
    crash = server.crash_report()
    if crash:
        return False, crash
    status, data, elapsed = send(server, ctx, json.dumps(review(base_pod())).encode())
    return status == 200, f"next good review: {status} {short(data, 120)} in {elapsed:.2f} s"


# --- what a correct patch looks like --------------------------------------------------------------------

def sidecar_problems(pod, mode):
    """Why `pod` (after the patch) does not carry the sidecar as `mode` places it; [] when it does."""
    if not isinstance(pod, dict):
        return [f"the patched pod is a {type(pod).__name__}"]
    spec, metadata = pod.get("spec"), pod.get("metadata")
    if not isinstance(spec, dict):
        return [f"spec is {short(json.dumps(spec), 80)}"]
    problems = []
    inits, containers = spec.get("initContainers"), spec.get("containers")
    init_names = [c.get("name") for c in inits if isinstance(c, dict)] if isinstance(inits, list) else None
    names = [c.get("name") for c in containers if isinstance(c, dict)] if isinstance(containers, list) else None
    if init_names is None or INIT not in init_names:
        problems.append(f"no {INIT} in initContainers ({short(json.dumps(inits), 120)})")
    if mode == "native":
        if init_names is None or PROXY not in init_names:
            problems.append(f"no {PROXY} in initContainers")
        elif INIT in init_names and init_names.index(INIT) > init_names.index(PROXY):
            problems.append(f"{INIT} comes after {PROXY}")
    else:
        if not names or names[0] != PROXY:
            problems.append(f"containers[0] is not {PROXY} (containers: {short(json.dumps(containers), 120)})")
    volumes = spec.get("volumes")
    if not isinstance(volumes, list) or not any(isinstance(v, dict) and str(v.get("name", "")).startswith(
            "needle-init-xtables-lock") for v in volumes):
        problems.append(f"no xtables lock volume in volumes ({short(json.dumps(volumes), 120)})")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("annotations"), dict) \
            or "needle.dev/injected-by" not in metadata["annotations"]:
        problems.append("no needle.dev/injected-by annotation")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("labels"), dict) \
            or "needle.dev/workload-ns" not in metadata["labels"]:
        problems.append("no needle.dev/workload-ns label")
    return problems


def is_subsequence(items, of):
    it = iter(of)
    return all(any(x == y for y in it) for x in items)


def preservation_problems(before, after):
    """The patch only adds: every list element and map entry the pod had is still there, in order. A list or
    map of the wrong type (annotations as a list, volumes as an object) has nothing a valid pod could keep,
    so replacing it is fine; every other member of spec and metadata must come through unchanged."""
    problems = []
    for section, kinds in (("spec", {"containers": list, "initContainers": list, "volumes": list}),
                           ("metadata", {"annotations": dict, "labels": dict})):
        old = before.get(section) if isinstance(before, dict) else None
        new = after.get(section) if isinstance(after, dict) else None
        if not isinstance(old, dict):
            continue
        if not isinstance(new, dict):
            problems.append(f"{section} is no longer an object")
            continue
        for key, value in old.items():
            if key not in kinds:
                if new.get(key) != value:
                    problems.append(f"{section}.{key} was changed")
            elif isinstance(value, list) and kinds[key] is list:
                if not isinstance(new.get(key), list) or not is_subsequence(value, new[key]):
                    problems.append(f"{section}.{key}: the pod's own {len(value)} entries were not kept")
            elif isinstance(value, dict) and kinds[key] is dict:
                kept = new.get(key)
                if not isinstance(kept, dict) or any(kept.get(k) != v for k, v in value.items()):
                    problems.append(f"{section}.{key}: the pod's own entries were not kept")
    return problems


def decode_review_response(status, data, uid):
    """The AdmissionResponse of a 200, or (None, why not)."""
    try:
        body = json.loads(data)
        r = body["response"]
    except (ValueError, KeyError, TypeError) as error:
        return None, f"200 but the body is not an AdmissionReview: {error!r}: {short(data, 200)}"
    if r.get("uid") != uid:
        return None, f"response uid {r.get('uid')!r}, expected {uid!r}"
    if r.get("allowed") is not True:
        return None, f"allowed is {r.get('allowed')!r}"
    return r, ""


def apply_patch(r, pod):
    """(patched pod, None) or (None, why the patch does not apply)."""
    if r.get("patchType") != "JSONPatch":
        return None, f"patchType {r.get('patchType')!r}"
    try:
        ops = json.loads(base64.b64decode(r["patch"], validate=True))
    except (ValueError, KeyError, TypeError) as error:
        return None, f"patch is not base64 JSON: {error!r}"
    if not isinstance(ops, list):
        return None, f"patch is not a list: {short(json.dumps(ops), 200)}"
    doc = copy.deepcopy(pod)
    for index, op in enumerate(ops):  # one at a time, to name the operation that fails
        try:
            doc = jsonpatch.apply_patch(doc, [op])
        except Exception as error:  # JsonPatchConflict, JsonPointerException, TypeError on odd documents
            return None, (f"patch does not apply: operation {index + 1} of {len(ops)}, {op.get('op')} {op.get('path')}: "
                          f"{type(error).__name__}: {short(error, 160)}")
    return doc, None


def judge(server, ctx, body, uid, mode, accept, pod=None):
    """Sends `body` and judges the answer. `accept` holds the outcomes that are right for this input:
    "400" (refused cleanly), "inject" (200 with a patch that applies to the pod as the API server reads it and
    yields the sidecar for `mode`, keeping what the pod had) and "skip" (200, allowed, no patch).
    Returns (ok, observation)."""
    pod = as_api_server_reads(body) if pod is None else pod
    status, data, elapsed = send(server, ctx, body)
    crash = server.crash_report()
    if crash:
        return False, f"{status} {short(data, 100)}; {crash}"
    seen = f"{status} in {elapsed:.2f} s"
    if status == 400:
        return "400" in accept, f"400 {short(data, 160)}"
    if status != 200:
        return False, f"{seen}: {short(data, 200)}"
    r, why = decode_review_response(status, data, uid)
    if r is None:
        return False, f"{seen}: {why}"
    if "patch" not in r:
        reason = (r.get("auditAnnotations") or {}).get("reason")
        return "skip" in accept, f"200 allowed without a patch (reason {reason!r})"
    if pod is None:
        return False, f"{seen}: a patch for a body the API server could not parse"
    patched, why = apply_patch(r, pod)
    if patched is None:
        return False, f"{seen}: {why}"
    problems = sidecar_problems(patched, mode) + preservation_problems(pod, patched)
    if problems:
        return False, f"{seen}: the patch applies but " + "; ".join(problems)
    return "inject" in accept, f"200 with a patch that applies and yields the {mode} sidecar"


def case(server, ctx, name, body, uid, mode, accept, pod=None):
    ok, seen = judge(server, ctx, body, uid, mode, accept, pod)
    check(name, ok, seen)
    return ok, seen


# --- 1. deep nesting ------------------------------------------------------------------------------------

def deep_nesting(server, ctx, observations):
    arrays = b"[" * DEPTH + b"]" * DEPTH
    objects = b'{"a":' * DEPTH + b"1" + b"}" * DEPTH
    pod = base_pod()
    pod["metadata"]["annotations"]["hostile/nested"] = "@@DEEP@@"
    _, in_annotation = raw_review(pod, raw={"DEEP": arrays})
    pod = base_pod()
    pod["metadata"]["annotations"]["hostile/nested"] = "@@DEEP@@"
    _, objects_in_annotation = raw_review(pod, raw={"DEEP": objects})
    r = review(base_pod())
    r["request"]["options"] = "@@DEEP@@"
    unknown_field = json.dumps(r).encode().replace(b'"@@DEEP@@"', arrays)
    inputs = [
        ("top level of the body, arrays", arrays),
        ("top level of the body, objects", objects),
        ("pod annotations map value (arrays where a string belongs)", in_annotation),
        ("pod annotations map value (objects where a string belongs)", objects_in_annotation),
        ("request.options, a field the injector does not read (arrays)", unknown_field),
    ]
    for where, body in inputs:
        status, data, elapsed = send(server, ctx, body, timeout=30)
        crash = server.crash_report()
        seen = f"{status} {short(data, 140)} in {elapsed:.2f} s" + (f"; {crash}" if crash else "")
        observations.append(f"nesting {DEPTH:,} deep at {where}: {seen}")
        check(f"1. JSON nested {DEPTH:,} deep at {where} is 400, not a crash", status == 400 and not crash, seen)
        ok, detail = good_review_ok(server, ctx)
        check(f"1. after nesting at {where} the injector is alive and the next good review is 200", ok, detail)
    # The annotation value as the issue words it: a string whose text is 100,000-deep JSON. Only a string, so a
    # patch is the right answer (the API server allows 256 KiB of annotations); a 400 is tolerated.
    pod = base_pod()
    pod["metadata"]["annotations"]["hostile/nested"] = arrays.decode()
    r = review(pod)
    _, seen = case(server, ctx, f"1. an annotation value holding {DEPTH:,}-deep JSON as a string: a patch (or 400), no crash",
                json.dumps(r).encode(), r["request"]["uid"], "native", {"inject", "400"})
    observations.append(f"annotation string holding {DEPTH:,}-deep JSON text: {seen}")
    ok, detail = good_review_ok(server, ctx)
    check("1. after the nested annotation string the next good review is 200", ok, detail)


# --- 2. a 3.9 MiB review with 5,000 containers ------------------------------------------------------------

def big_review(target_bytes, count=5000):
    def container(i, pad):
        return {"name": f"app-{i:04d}", "image": f"registry.example.com/team/app-{i:04d}:1.0.0",
                "ports": [{"name": "http", "containerPort": 10000 + i, "protocol": "TCP"}],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 10000 + i}, "periodSeconds": 10},
                "env": [{"name": "PAD", "value": "x" * pad}],
                "resources": {"requests": {"cpu": "1m", "memory": "1Mi"}}}
    pod = base_pod()
    pod["spec"]["containers"] = [container(i, 0) for i in range(count)]
    pod["metadata"]["annotations"]["hostile/pad"] = ""
    r = review(pod)
    size = len(json.dumps(r).encode())
    per, rest = divmod(target_bytes - size, count)
    pod["spec"]["containers"] = [container(i, per) for i in range(count)]
    pod["metadata"]["annotations"]["hostile/pad"] = "y" * rest
    body = json.dumps(r).encode()
    assert len(body) == target_bytes, (len(body), target_bytes)
    return r["request"]["uid"], body, pod


def big(server, ctx, time_limit, observations):
    target = int(3.9 * 1024 * 1024)
    uid, body, pod = big_review(target)
    times, statuses, verdicts = [], [], []
    for attempt in range(3):
        conn = connection(server, ctx, timeout=120)
        try:
            conn.connect()  # the TLS handshake is not part of the review's time
            status, data, elapsed = send(server, ctx, body, conn=conn)
        finally:
            conn.close()
        crash = server.crash_report()
        times.append(elapsed)
        statuses.append(status)
        if attempt == 0:
            if crash:
                verdicts.append(crash)
            elif status != 200:
                verdicts.append(f"{status} {short(data, 200)}")
            else:
                r, why = decode_review_response(status, data, uid)
                patched, why = apply_patch(r, pod) if r is not None else (None, why)
                if patched is None:
                    verdicts.append(why)
                else:
                    problems = sidecar_problems(patched, "native") + preservation_problems(pod, patched)
                    if patched["spec"].get("containers") != pod["spec"]["containers"]:
                        problems.append("the 5,000 app containers are not intact")
                    verdicts.extend(problems)
        if crash or status != 200:
            break
    median = statistics.median(times)
    timing = ", ".join(f"{t:.3f} s" for t in times)
    with open(server.log_path, errors="replace") as f:  # the injector's own measure: decode, decide, encode
        logged = [line.split("duration_ms=")[1].split()[0] for line in f if f"uid={uid}" in line and "duration_ms=" in line]
    observations.append(f"3.9 MiB review ({len(body):,} bytes, 5,000 containers): statuses {statuses}, round trips {timing}, "
                        f"median {median:.3f} s (limit {time_limit} s); duration_ms in the injector's log: {', '.join(logged)}")
    check("2. a 3.9 MiB review with 5,000 containers gets 200, allowed, and a patch that applies: sidecar, init "
          "container, the 5,000 app containers intact", not verdicts and statuses[0] == 200, "; ".join(verdicts))
    check(f"2. the 3.9 MiB review is answered within {time_limit} s (median of {len(times)})",
          statuses[0] == 200 and median <= time_limit, f"times {timing}")


# --- 3. duplicate keys, invalid UTF-8, out-of-range numbers, wrong types --------------------------------

def dumps(value):
    return json.dumps(value).encode()


def duplicates(server, ctx, observations):
    app = base_pod()["spec"]["containers"][0]
    helper = {"name": "setup", "image": "busybox", "command": ["true"]}
    cases = []

    def add(name, path, fragment, namespace, mode, accept, note):
        """`path` names the member of the pod whose JSON text is `fragment` (raw, duplicates and all)."""
        pod = base_pod()
        node = pod
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = "@@DUP@@"
        uid, body = raw_review(pod, namespace, {"DUP": fragment})
        cases.append((name, uid, body, mode, accept, note))

    meta = base_pod()["metadata"]
    spec = base_pod()["spec"]
    spec_wo = lambda *keys: {k: v for k, v in spec.items() if k not in keys}  # noqa: E731

    def obj(*pairs):
        """An object's JSON text with the members in this order, duplicates allowed."""
        return b"{" + b",".join(dumps(k) + b":" + (v if isinstance(v, bytes) else dumps(v)) for k, v in pairs) + b"}"

    add('needle.dev/inject "disabled" then "enabled": the API server keeps "enabled", so the pod is injected',
        ("metadata", "annotations"), obj(("needle.dev/inject", "disabled"), ("needle.dev/inject", "enabled")), "plain", "native",
        {"inject", "400"}, "first-wins would skip the pod")
    add('needle.dev/inject "enabled" then "disabled": the API server keeps "disabled", so no patch',
        ("metadata", "annotations"), obj(("needle.dev/inject", "enabled"), ("needle.dev/inject", "disabled")), "plain", "native",
        {"skip", "400"}, "first-wins would inject a pod that opted out")
    add("metadata.annotations null then an object: the pod's annotations are kept", ("metadata",),
        obj(*[(k, v) for k, v in meta.items() if k != "annotations"], ("annotations", None),
            ("annotations", {"team": "orders", "kubectl.kubernetes.io/default-container": "app"})),
        "demo", "native", {"inject", "400"}, "first-wins adds annotations whole, wiping the pod's")
    add("spec.initContainers null then a list (native): the pod's init container is kept", ("spec",),
        obj(*spec_wo("initContainers").items(), ("initContainers", None), ("initContainers", [helper])),
        "demo", "native", {"inject", "400"}, "first-wins adds initContainers whole, wiping the pod's")
    add("spec.initContainers a list then null (native): the patch still applies", ("spec",),
        obj(*spec_wo("initContainers").items(), ("initContainers", [helper]), ("initContainers", None)),
        "demo", "native", {"inject", "400"}, "first-wins adds into /spec/initContainers/0 of a null")
    add("spec.volumes a list then null: the patch still applies", ("spec",),
        obj(*spec_wo("volumes").items(), ("volumes", spec["volumes"]), ("volumes", None)),
        "demo", "native", {"inject", "400"}, "first-wins appends to a null")
    add("spec.containers null then a list (classic): the app container is kept", ("spec",),
        obj(*spec_wo("containers").items(), ("containers", None), ("containers", [app])),
        "classic", "classic", {"inject", "400"}, "first-wins creates containers whole")
    add("spec.containers a proxy then the app (classic): the API server sees only the app, so the pod is injected", ("spec",),
        obj(*spec_wo("containers").items(), ("containers", [{"name": PROXY, "image": "x"}]), ("containers", [app])),
        "classic", "classic", {"inject", "400"}, "first-wins sees the sidecar already present and skips")
    pod = base_pod()
    pod["spec"] = "@@S@@"
    uid, body = raw_review(pod, "demo", {"S": obj(("containers", [{"name": "first"}]), ("volumes", None)) [:-1]
                                         + b"," + obj(*spec.items())[1:]})
    cases.append(("spec members repeated wholesale (containers, volumes) after a first set", uid, body, "native",
                  {"inject", "400"}, ""))
    for name, uid, body, mode, accept, note in cases:
        ok, seen = case(server, ctx, "3. duplicate keys: " + name, body, uid, mode, accept)
        observations.append(f"duplicate keys: {name}: {seen}" + (f" [{note}]" if note and not ok else ""))


def invalid_utf8(server, ctx, observations):
    inputs = [
        ("0xFF in an annotation value", ("metadata", "annotations", "hostile"), b'"bad \xff byte"'),
        ("overlong encoding C0 AF in a label value", ("metadata", "labels", "hostile"), b'"over\xc0\xaflong"'),
        ("an encoded surrogate ED A0 80 in an annotation value", ("metadata", "annotations", "hostile"), b'"sur\xed\xa0\x80"'),
        ("a truncated sequence E2 82 at the end of a string", ("metadata", "annotations", "hostile"), b'"cut \xe2\x82"'),
        ("invalid UTF-8 in an annotation key", ("metadata", "annotations", "@key"), b'"value"'),
        ("a lone surrogate escape \\ud800 in an annotation value", ("metadata", "annotations", "hostile"), b'"lone \\ud800"'),
        ("0xFE in the container name", None, None),
    ]
    for name, path, fragment in inputs:
        pod = base_pod()
        if path is None:
            pod["spec"]["containers"][0]["name"] = "@@X@@"
            fragment = b'"app\xfe"'
            uid, body = raw_review(pod, "demo", {"X": fragment})
        elif path[2] == "@key":
            pod["metadata"]["annotations"]["@@K@@"] = "value"
            r = review(pod)
            uid, body = r["request"]["uid"], dumps(r).replace(b'"@@K@@"', b'"key\xff"')
        else:
            pod[path[0]][path[1]][path[2]] = "@@X@@"
            uid, body = raw_review(pod, "demo", {"X": fragment})
        _, seen = case(server, ctx, f"3. invalid UTF-8: {name}: 400 or a patch that applies", body, uid, "native", {"inject", "400"})
        observations.append(f"invalid UTF-8: {name}: {seen}")


def numbers(server, ctx, observations):
    inputs = [
        ("containerPort 99999999999999999999999", ("port",), b"99999999999999999999999"),
        ("containerPort 1e400", ("port",), b"1e400"),
        ("containerPort -1e400", ("port",), b"-1e400"),
        ("containerPort 8080.5", ("port",), b"8080.5"),
        ("containerPort 1e2 (an integer written with an exponent)", ("port",), b"1e2"),
        ("a readiness probe port 1e400", ("probe",), b"1e400"),
        ("terminationGracePeriodSeconds 1e400", ("spec", "terminationGracePeriodSeconds"), b"1e400"),
        ("priority 18446744073709551616 (2^64)", ("spec", "priority"), b"18446744073709551616"),
        ("priority -9223372036854775809 (below Int64)", ("spec", "priority"), b"-9223372036854775809"),
        ("a number with 10,000 digits", ("spec", "priority"), b"9" * 10000),
        ("1e-400 (underflows to 0)", ("spec", "terminationGracePeriodSeconds"), b"1e-400"),
    ]
    for name, where, fragment in inputs:
        pod = base_pod()
        if where[0] == "port":
            pod["spec"]["containers"][0]["ports"][0]["containerPort"] = "@@N@@"
        elif where[0] == "probe":
            pod["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = "@@N@@"
        else:
            pod[where[0]][where[1]] = "@@N@@"
        uid, body = raw_review(pod, "demo", {"N": fragment})
        _, seen = case(server, ctx, f"3. out-of-range number: {name}: 400 or a patch that applies", body, uid, "native",
                    {"inject", "400"})
        observations.append(f"number: {name}: {seen}")


def wrong_types(server, ctx, observations):
    def with_(mutate):
        pod = base_pod()
        mutate(pod)
        return pod

    def set_path(*path_and_value):
        *path, value = path_and_value

        def mutate(pod):
            node = pod
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        return mutate

    app_path = ("spec", "containers", 0)
    inputs = [
        ("containers as an object", set_path("spec", "containers", {"app": base_pod()["spec"]["containers"][0]})),
        ("containers as a string", set_path("spec", "containers", "app")),
        ("a container as a string", set_path("spec", "containers", ["app"])),
        ("a container as null", set_path("spec", "containers", [None])),
        ("a container name as a number", set_path(*app_path, "name", 7)),
        ("a port as a string", set_path(*app_path, "ports", 0, "containerPort", "8080")),
        ("ports as an object", set_path(*app_path, "ports", {"http": 8080})),
        ("a port entry as a number", set_path(*app_path, "ports", [8080])),
        ("a probe as a list", set_path(*app_path, "readinessProbe", [1, 2])),
        ("initContainers as a string", set_path("spec", "initContainers", "setup")),
        ("initContainers as an object", set_path("spec", "initContainers", {"name": "setup"})),
        ("volumes as an object", set_path("spec", "volumes", {"name": "data"})),
        ("volumes as a number", set_path("spec", "volumes", 3)),
        ("a volume name as a list", set_path("spec", "volumes", 0, "name", ["x"])),
        ("annotations as a list", set_path("metadata", "annotations", ["needle.dev/inject=enabled"])),
        ("annotations as a string", set_path("metadata", "annotations", "x")),
        ("an annotation value as a number", set_path("metadata", "annotations", "hostile", 5)),
        ("labels as a string", set_path("metadata", "labels", "app=orders")),
        ("labels as a list", set_path("metadata", "labels", [])),
        ("metadata as a number", set_path("metadata", 42)),
        ("metadata as a list", set_path("metadata", [1])),
        ("metadata as a string", set_path("metadata", "orders")),
        ("hostNetwork as a string", set_path("spec", "hostNetwork", "false")),
        ("spec.os as a string", set_path("spec", "os", "linux")),
    ]
    for mode in ("native", "classic"):
        for name, mutate in inputs:
            pod = with_(mutate)
            r = review(pod, MODE_NAMESPACE[mode])
            _, seen = case(server, ctx, f"3. wrong type ({mode}): {name}: 400 or a patch that applies and yields the sidecar",
                        dumps(r), r["request"]["uid"], mode, {"inject", "400"})
            observations.append(f"wrong type ({mode}): {name}: {seen}")


# --- 4. handshakes that never finish --------------------------------------------------------------------

def client_hello():
    """The first flight of a real TLS client, made by Python's ssl without a socket."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def stalled_handshakes(server, ctx, observations):
    hello = client_hello()
    held = []  # (socket, opened at, kind)
    try:
        for i in range(100):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            kind = ("nothing", "half a ClientHello", "a whole ClientHello, then nothing")[i % 3]
            if i % 3 == 1:
                s.sendall(hello[: len(hello) // 2])
            elif i % 3 == 2:
                s.sendall(hello)
            held.append((s, time.monotonic(), kind))
        time.sleep(0.2)
        r = review(base_pod())
        status, data, elapsed = send(server, ctx, dumps(r), timeout=10)
        check("4. while 100 TLS handshakes stall, a good review gets 200 in under 2 s", status == 200 and elapsed < 2,
              f"{status} {short(data, 100)} in {elapsed:.2f} s")
        observations.append(f"review during 100 stalled handshakes: {status} in {elapsed:.3f} s")
        # How long until the server hangs up on each; bounded by the header timeout plus slack.
        bound = HEADER_TIMEOUT + 2
        deadline = time.monotonic() + HEADER_TIMEOUT + 10
        open_ = {s.fileno(): (s, t, k) for s, t, k in held}
        closed_after = {}
        while open_ and time.monotonic() < deadline:
            ready, _, _ = select.select(list(open_), [], [], 0.2)
            for fd in ready:
                s, t, kind = open_[fd]
                try:
                    data = s.recv(65536)
                except (ConnectionResetError, OSError):
                    data = b""
                if not data:  # a server hello, alerts etc. are read and ignored until the close
                    closed_after[fd] = (time.monotonic() - t, kind)
                    del open_[fd]
        latest = max((t for t, _ in closed_after.values()), default=float("nan"))
        earliest = min((t for t, _ in closed_after.values()), default=float("nan"))
        observations.append(f"stalled handshakes: {len(closed_after)}/100 closed by the server, after {earliest:.2f} to "
                            f"{latest:.2f} s (--header-timeout {HEADER_TIMEOUT}); still open after "
                            f"{HEADER_TIMEOUT + 10} s: {len(open_)}")
        by_kind = {}
        for _, (t, kind) in closed_after.items():
            by_kind.setdefault(kind, []).append(t)
        check(f"4. the server closes all 100 stalled handshakes within {bound} s (--header-timeout {HEADER_TIMEOUT} + 2)",
              not open_ and latest <= bound,
              f"{len(open_)} still open; closed after at most {latest:.2f} s; "
              + ", ".join(f"{k}: {len(v)} closed, max {max(v):.2f} s" for k, v in by_kind.items()))
    finally:
        for s, _, _ in held:
            s.close()
    ok, detail = good_review_ok(server, ctx)
    check("4. after the stalled handshakes the injector is alive and serves", ok, detail)


# --- 5. memory and descriptors over 1,000 reviews -------------------------------------------------------

def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def steady(server, ctx, observations):
    pod = read_example("pod.json")
    template = json.loads(pod)
    conn = connection(server, ctx, timeout=20)
    samples, failures, first_sock = {}, [], None
    start = time.monotonic()
    try:
        for i in range(1, 1001):
            template["request"]["uid"] = f"steady-{i:04d}"
            status, data, _ = send(server, ctx, dumps(template), conn=conn)
            if status != 200:
                failures.append((i, status, short(data, 100)))
                break
            if first_sock is None:
                first_sock = conn.sock
            if i in (100, 1000):
                time.sleep(0.2)  # let the connection settle before reading the numbers
                samples[i] = (rss_kib(server.pid), fd_count(server.pid))
        same_connection = conn.sock is first_sock and first_sock is not None
    finally:
        conn.close()
    elapsed = time.monotonic() - start
    if failures or len(samples) < 2:
        check("5. 1,000 reviews on one keep-alive connection all get 200", False, failures or server.crash_report())
        return
    check("5. 1,000 reviews on one keep-alive connection all get 200, over the same connection", same_connection,
          "the client had to reconnect")
    (rss100, fd100), (rss1000, fd1000) = samples[100], samples[1000]
    growth = rss1000 - rss100
    observations.append(f"steady state: VmRSS {rss100} KiB after 100 reviews, {rss1000} KiB after 1,000 "
                        f"({growth:+d} KiB); descriptors {fd100} -> {fd1000}; 1,000 reviews took {elapsed:.1f} s "
                        f"({elapsed:.1f} ms each)")
    check("5. VmRSS grows less than 2 MiB between review 100 and review 1,000", growth < 2048,
          f"{rss100} KiB -> {rss1000} KiB ({growth:+d} KiB)")
    check("5. open descriptors are the same after review 100 and review 1,000", fd100 == fd1000, f"{fd100} -> {fd1000}")


# --- 6. pipelining --------------------------------------------------------------------------------------

def take_responses(buf, out, count):
    """Moves whole HTTP/1.1 responses (status, body) from `buf` to `out`, up to `count`; returns what is left."""
    while len(out) < count:
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            break
        head = buf[:end].decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        if len(buf) < end + 4 + length:
            break
        out.append((int(head[0].split()[1]), buf[end + 4:end + 4 + length]))
        buf = buf[end + 4 + length:]
    return buf


def read_responses(sock, count, deadline):
    """Up to `count` HTTP/1.1 responses (status, body) read from `sock` before `deadline`."""
    buf, out = b"", []
    while len(out) < count and time.monotonic() < deadline:
        buf = take_responses(buf, out, count)
        if len(out) >= count:
            break
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, TimeoutError):
            break
        except (ssl.SSLError, OSError):
            break
        if not chunk:
            break
        buf += chunk
    return out


def pipelined(server, ctx, observations):
    requests, uids = b"", []
    for _ in range(2):
        r = review(base_pod())
        uids.append(r["request"]["uid"])
        body = dumps(r)
        requests += (b"POST /inject HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    assert len(requests) < 16384  # one TLS record, so one TCP write
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", server.port), timeout=5), server_hostname="localhost")
    try:
        start = time.monotonic()
        s.sendall(requests)
        got = read_responses(s, 2, start + 2)
        elapsed = time.monotonic() - start
    finally:
        s.close()
    answered = []
    for status, body in got:
        try:
            answered.append((status, json.loads(body)["response"]["uid"]))
        except (ValueError, KeyError, TypeError):
            answered.append((status, short(body, 80)))
    observations.append(f"pipelined pair {uids}: got {answered} in {elapsed:.2f} s")
    check("6. two reviews in one TCP write both get 200 within 2 s, in order", answered == [(200, uids[0]), (200, uids[1])],
          f"got {answered} in {elapsed:.2f} s")
    ok, detail = good_review_ok(server, ctx)
    check("6. after the pipelined pair the injector still serves", ok, detail)
    pipelined_burst(server, ctx, observations)


def exchange_all(sock, data, count, deadline):
    """Sends `data` and reads `count` responses on one TLS socket from one thread, interleaved: neither side's
    buffers fill up waiting for the other, and an SSL socket is never used from two threads at once."""
    sock.setblocking(False)
    sent, buf, out = 0, b"", []
    while len(out) < count and time.monotonic() < deadline:
        want_write = sent < len(data)
        readable, writable, _ = select.select([sock], [sock] if want_write else [], [], 0.5)
        if writable or (want_write and sock.pending()):
            try:
                sent += sock.send(data[sent:sent + 16384])
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
        if readable or sock.pending():
            try:
                chunk = sock.recv(65536)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue
            except (ssl.SSLError, OSError):
                break
            if not chunk:
                break
            buf = take_responses(buf + chunk, out, count)
    return out


def pipelined_burst(server, ctx, observations, count=3000):
    """A review big enough to be decided off the event loop, then `count` small ones queued behind it, each
    answered at once when its turn comes: every answer comes, in order, and the injector stays up."""
    big = review(base_pod())
    big["request"]["object"]["metadata"]["annotations"]["hostile/pad"] = "p" * (300 * 1024)
    small = review(base_pod())
    def framed(r):
        body = dumps(r)
        return (b"POST /inject HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    requests = framed(big) + framed(small) * count
    s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", server.port), timeout=10), server_hostname="localhost")
    try:
        start = time.monotonic()
        got = exchange_all(s, requests, count + 1, start + 60)
        elapsed = time.monotonic() - start
    finally:
        s.close()
    uids = [json.loads(body)["response"]["uid"] if status == 200 else status for status, body in got]
    expected = [big["request"]["uid"]] + [small["request"]["uid"]] * count
    observations.append(f"pipelined burst: {len(got)} of {count + 1} answered in {elapsed:.2f} s")
    check(f"6. a review decided off the event loop with {count} more queued behind it: all answered, in order",
          uids == expected, f"{len(got)} answered in {elapsed:.2f} s; first differences: "
          + str([(i, a, b) for i, (a, b) in enumerate(zip(uids, expected)) if a != b][:3]))
    ok, detail = good_review_ok(server, ctx)
    check("6. after the burst the injector is alive and serves", ok and server.alive(), detail)


# --- 7. null and missing lists and maps -----------------------------------------------------------------

def nulls(server, ctx, observations):
    def null(section, key):
        def mutate(pod):
            pod[section][key] = None
        return mutate

    def missing(section, key):
        def mutate(pod):
            pod[section].pop(key, None)
        return mutate

    def whole(section, value):
        def mutate(pod):
            if value is KeyError:
                pod.pop(section)
            else:
                pod[section] = value
        return mutate

    def all_null(pod):
        for key in ("containers", "initContainers", "volumes"):
            pod["spec"][key] = None
        pod["metadata"]["annotations"] = None
        pod["metadata"]["labels"] = None

    inputs = [
        ("spec.containers null", null("spec", "containers")),
        ("spec.containers missing", missing("spec", "containers")),
        ("spec.containers empty", lambda pod: pod["spec"].__setitem__("containers", [])),
        ("spec.initContainers null", null("spec", "initContainers")),
        ("spec.volumes null", null("spec", "volumes")),
        ("spec.volumes missing", missing("spec", "volumes")),
        ("metadata.annotations null", null("metadata", "annotations")),
        ("metadata.annotations missing", missing("metadata", "annotations")),
        ("metadata.labels null", null("metadata", "labels")),
        ("metadata.labels missing", missing("metadata", "labels")),
        ("metadata null", whole("metadata", None)),
        ("metadata missing", whole("metadata", KeyError)),
        ("containers, initContainers, volumes, annotations and labels all null", all_null),
        ("spec missing", whole("spec", KeyError)),
    ]
    for mode in ("classic", "native"):
        for name, mutate in inputs:
            pod = base_pod()
            if name.startswith("spec.initContainers"):
                pod["spec"]["initContainers"] = [{"name": "setup", "image": "busybox"}]
            mutate(pod)
            r = review(pod, MODE_NAMESPACE[mode])
            _, seen = case(server, ctx, f"7. {mode} mode, {name}: 400 or a patch that applies and yields the sidecar",
                        dumps(r), r["request"]["uid"], mode, {"inject", "400"})
            observations.append(f"{mode}: {name}: {seen}")
        for name, value in (("a string", "spec"), ("a number", 3), ("a list", [{"containers": []}]), ("null", None),
                            ("true", True)):
            pod = base_pod()
            pod["spec"] = value
            r = review(pod, MODE_NAMESPACE[mode])
            _, seen = case(server, ctx, f"7. {mode} mode, spec as {name} is 400", dumps(r), r["request"]["uid"], mode, {"400"})
            observations.append(f"{mode}: spec as {name}: {seen}")


# --- main -----------------------------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--injector", required=True)
    parser.add_argument("--time-limit", type=float, default=1.0,
                        help="seconds the 3.9 MiB / 5,000-container review may take (1.0 is meant for release builds)")
    parser.add_argument("--only", default="1234567", help="which groups to run, e.g. 37")
    args = parser.parse_args()
    binary = os.path.abspath(args.injector)

    def watchdog(signum, frame):
        raise SuiteStopped(f"suite time limit of {SUITE_LIMIT} s reached")
    signal.signal(signal.SIGALRM, watchdog)
    signal.signal(signal.SIGTERM, watchdog)
    signal.alarm(SUITE_LIMIT)

    work = tempfile.mkdtemp(prefix="needle-hostile-e2e-")
    observations = []
    server = None
    try:
        if jsonpatch is None:
            check("python jsonpatch is installed (pip install jsonpatch)", False)
            return
        ca_key, ca = make_ca(work)
        crt, key = issue(work, ca_key, ca, "serving")
        namespaces = os.path.join(work, "namespaces.yaml")
        with open(namespaces, "w") as f:
            f.write(NAMESPACES)
        server = Server(binary, ["--tls-cert", crt, "--tls-key", key, "--namespaces", namespaces,
                                 "--header-timeout", str(HEADER_TIMEOUT), "--body-timeout", "10",
                                 "--max-connections", "512"], work)
        ctx = tls_context(ca)
        groups = {"1": lambda: deep_nesting(server, ctx, observations),
                  "2": lambda: big(server, ctx, args.time_limit, observations),
                  "3": lambda: (duplicates(server, ctx, observations), invalid_utf8(server, ctx, observations),
                                numbers(server, ctx, observations), wrong_types(server, ctx, observations)),
                  "4": lambda: stalled_handshakes(server, ctx, observations),
                  "5": lambda: steady(server, ctx, observations),
                  "6": lambda: pipelined(server, ctx, observations),
                  "7": lambda: nulls(server, ctx, observations)}
        for key in "1234567":
            if key in args.only:
                groups[key]()
        check("the injector was never restarted after a crash", server.count == 1,
              f"started {server.count} times; logs in {work}")
    except SuiteStopped as stop:
        check("the suite finished in time", False, stop)
    except Exception as error:  # a failure of the harness itself (or an injector that will not start) is a FAIL too
        check("the suite ran to the end", False, "".join(traceback.format_exception(error))[-1500:])
    finally:
        signal.alarm(0)
        if server is not None:
            try:
                server.stop()
            except Exception:
                pass
        for p in processes:
            if p.poll() is None:
                p.kill()
        if observations:
            print("observations:")
            for line in observations:
                print("  " + line)
        if results.count(False) == 0 or not os.environ.get("KEEP_LOGS"):
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"logs kept in {work}")
    failed = results.count(False)
    print(f"webhook hostile e2e: {results.count(True)} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
