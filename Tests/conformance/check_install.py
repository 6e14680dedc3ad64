#!/usr/bin/env python3
"""Validates `needle install` (default, --ha, with a kept CA), every object `kubectl kustomize Deploy/` builds
(one PASS/FAIL line each; no kubectl is a FAIL) and `needle inject --manual` output with kubernetes-validate
(Kubernetes 1.33, strict), checks that the objects refer to each other, and that the serving certificate
verifies against the caBundle (openssl) with the Service's DNS names.
Prints PASS/FAIL lines and `install conformance: N passed, M failed`."""

import argparse, base64, os, shutil, subprocess, sys, tempfile

import kubernetes_validate
import yaml

results = []
CERT_MANAGER_KINDS = {"Issuer", "Certificate"}


def check(name, ok, detail=""):
    results.append(bool(ok))
    print(("PASS " if ok else "FAIL ") + name + ("" if ok or not detail else ": " + str(detail)[:400]), flush=True)


def validate_all(label, documents):
    problems = []
    for doc in documents:
        if not doc or doc.get("kind") in CERT_MANAGER_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, "1.33", strict=True)
        except Exception as error:  # noqa: BLE001 - report every schema problem the same way
            problems.append(f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {error}")
    check(f"{label}: every object is schema-valid (Kubernetes 1.33, strict)", not problems, "; ".join(problems))


def by_kind(documents, kind):
    return [d for d in documents if d and d.get("kind") == kind]


def named(documents, kind, name):
    found = [d for d in by_kind(documents, kind) if d["metadata"]["name"] == name]
    return found[0] if found else None


def check_identity(label, documents, work):
    """needle-controller's objects: the PKI, RBAC, the Deployment and Service, and the injector's trust anchors."""
    roots = named(documents, "ConfigMap", "needle-identity-trust-roots")
    issuer = named(documents, "Secret", "needle-identity-issuer")
    deployment = named(documents, "Deployment", "needle-controller")
    service = named(documents, "Service", "needle-identity")
    role = named(documents, "ClusterRole", "needle-controller")
    check(f"{label}: the controller's ConfigMap, Secret, Deployment, Service and ClusterRole are there",
          all(x is not None for x in (roots, issuer, deployment, service, role)))
    if not all(x is not None for x in (roots, issuer, deployment, service, role)):
        return None
    pod = deployment["spec"]["template"]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    args = pod["spec"]["containers"][0]["args"]
    flag = lambda name: args[args.index(name) + 1] if name in args else None
    check(f"{label}: the controller mounts the issuer Secret and the trust roots where its flags point",
          volumes["issuer"]["secret"]["secretName"] == "needle-identity-issuer"
          and volumes["trust-roots"]["configMap"]["name"] == "needle-identity-trust-roots"
          and flag("--issuer-cert") == mounts["issuer"] + "/tls.crt" and flag("--issuer-key") == mounts["issuer"] + "/tls.key"
          and flag("--trust-anchors") == mounts["trust-roots"] + "/ca-bundle.crt"
          and pod["metadata"]["labels"].get("needle.dev/control-plane-component") == "controller")
    check(f"{label}: the needle-identity Service selects the controller's pods on port 8080",
          all(pod["metadata"]["labels"].get(k) == v for k, v in service["spec"]["selector"].items())
          and service["spec"]["ports"][0]["port"] == 8080 and service["spec"]["ports"][0]["targetPort"] == "identity")
    destination = named(documents, "Service", "needle-destination")
    container_ports = {p["name"]: p["containerPort"] for p in pod["spec"]["containers"][0]["ports"]}
    check(f"{label}: the needle-destination Service selects the controller's pods on port 8086, a port the container names",
          destination is not None
          and all(pod["metadata"]["labels"].get(k) == v for k, v in destination["spec"]["selector"].items())
          and destination["spec"]["ports"][0]["port"] == 8086 and destination["spec"]["ports"][0]["targetPort"] == "destination"
          and container_ports.get("destination") == 8086)
    check(f"{label}: RBAC lets the controller create TokenReviews and watch pods, services and endpointslices",
          any(r["apiGroups"] == ["authentication.k8s.io"] and r["resources"] == ["tokenreviews"] and r["verbs"] == ["create"]
              for r in role["rules"])
          and any("endpointslices" in r["resources"] and "watch" in r["verbs"] for r in role["rules"]))
    injector = named(documents, "Deployment", "needle-injector")
    config = yaml.safe_load(named(documents, "ConfigMap", "needle-injector-config")["data"]["config.yaml"])
    injector_mounts = {m["name"]: m["mountPath"] for m in injector["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]}
    check(f"{label}: the injector reads the trust anchors from the mounted trust roots (identity on)",
          config.get("trustAnchorsFile") == injector_mounts.get("trust-roots", "?") + "/ca-bundle.crt")
    anchors, issuer_crt = (os.path.join(work, f"{label}-{n}") for n in ("anchors.pem", "issuer.pem"))
    with open(anchors, "w") as f:
        f.write(roots["data"]["ca-bundle.crt"])
    with open(issuer_crt, "wb") as f:
        f.write(base64.b64decode(issuer["data"]["tls.crt"]))
    verify = subprocess.run(["openssl", "verify", "-CAfile", anchors, issuer_crt], capture_output=True, text=True)
    text = subprocess.run(["openssl", "x509", "-in", issuer_crt, "-noout", "-text"], capture_output=True, text=True).stdout
    check(f"{label}: openssl verifies the issuer against the trust anchors, and it is a CA that may sign",
          verify.returncode == 0 and "CA:TRUE" in text and "Certificate Sign" in text, verify.stderr + text[-300:])
    return roots["data"]["ca-bundle.crt"], deployment


def check_install(needle, label, args, work):
    out = subprocess.run([needle, "install", *args], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        check(f"{label}: needle install exits 0", False, out.stderr)
        return None
    documents = [d for d in yaml.safe_load_all(out.stdout) if d]
    validate_all(label, documents)
    ns = by_kind(documents, "Namespace")[0]["metadata"]["name"]
    webhook = by_kind(documents, "MutatingWebhookConfiguration")[0]["webhooks"][0]
    service = named(documents, "Service", "needle-injector")
    deployment = named(documents, "Deployment", "needle-injector")
    secret = named(documents, "Secret", "needle-injector-tls")
    svc = webhook["clientConfig"]["service"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    consistent = (svc["name"] == service["metadata"]["name"] and svc["namespace"] == ns and svc["path"] == "/inject"
                  and all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items())
                  and any(v.get("secret", {}).get("secretName") == secret["metadata"]["name"] for v in volumes)
                  and named(documents, "ServiceAccount", deployment["spec"]["template"]["spec"]["serviceAccountName"]) is not None
                  and webhook["name"] == "needle-injector.needle.dev" and webhook["sideEffects"] == "None"
                  and webhook["admissionReviewVersions"] == ["v1"] and webhook["timeoutSeconds"] == 10)
    check(f"{label}: webhook, Service, Secret and Deployment refer to each other", consistent)
    excluded = [e for e in webhook["namespaceSelector"]["matchExpressions"] if e["key"] == "kubernetes.io/metadata.name"][0]["values"]
    check(f"{label}: the webhook never matches its own namespace, kube-system or kube-node-lease",
          {"kube-system", "kube-node-lease", ns} <= set(excluded) and webhook["objectSelector"]["matchExpressions"][0]["operator"] == "DoesNotExist")
    ca = os.path.join(work, f"{label}-ca.pem")
    crt = os.path.join(work, f"{label}-tls.crt")
    with open(ca, "wb") as f:
        f.write(base64.b64decode(webhook["clientConfig"]["caBundle"]))
    with open(crt, "wb") as f:
        f.write(base64.b64decode(secret["data"]["tls.crt"]))
    verify = subprocess.run(["openssl", "verify", "-CAfile", ca, crt], capture_output=True, text=True)
    check(f"{label}: openssl verifies the serving certificate against the caBundle", verify.returncode == 0, verify.stderr)
    sans = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-ext", "subjectAltName"], capture_output=True, text=True).stdout
    check(f"{label}: the serving certificate names the Service's DNS names",
          f"DNS:needle-injector.{ns}.svc" in sans and f"DNS:needle-injector.{ns}.svc.cluster.local" in sans, sans)
    return documents, ca


CLUSTER_SCOPED_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "MutatingWebhookConfiguration"}


def kustomize(root):
    """The objects `kubectl kustomize Deploy/` builds, or None after a FAIL saying why (no kubectl fails too)."""
    name = "Deploy/: `kubectl kustomize Deploy/` builds the kustomization"
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        check(name, False, "kubectl is not on PATH (CI installs it; this check never skips)")
        return None
    out = subprocess.run([kubectl, "kustomize", os.path.join(root, "Deploy")], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        check(name, False, f"exit {out.returncode}: {out.stderr}")
        return None
    try:
        documents = [d for d in yaml.safe_load_all(out.stdout) if d]
    except yaml.YAMLError as error:
        check(name, False, f"its output is not YAML: {error}")
        return None
    check(name, documents and all(isinstance(d, dict) for d in documents), out.stdout[:200])
    return documents if documents and all(isinstance(d, dict) for d in documents) else None


def check_deploy_object(doc, namespace):
    """One kustomize output object: schema-valid (cert-manager's kinds, which kubernetes-validate has no schema
    for: a cert-manager.io/v1 object with a spec), and in the namespace when it is namespaced."""
    kind, meta = doc.get("kind"), doc.get("metadata") or {}
    problems = []
    if kind in CERT_MANAGER_KINDS:
        what = "a cert-manager.io/v1 object with a spec (no schema for cert-manager's kinds)"
        if doc.get("apiVersion") != "cert-manager.io/v1" or not isinstance(doc.get("spec"), dict) or not meta.get("name"):
            problems.append(f"apiVersion {doc.get('apiVersion')!r}, spec {type(doc.get('spec')).__name__}")
    else:
        what = "schema-valid (Kubernetes 1.33, strict)"
        try:
            kubernetes_validate.validate(doc, "1.33", strict=True)
        except Exception as error:  # noqa: BLE001 - report every schema problem the same way
            where = "/".join(str(p) for p in getattr(error, "absolute_path", []))
            problems.append(f"at /{where}: " + " ".join((getattr(error, "message", None) or str(error)).split()))
    if kind in CLUSTER_SCOPED_KINDS and "namespace" in meta:
        problems.append(f"cluster-scoped, yet namespace {meta['namespace']!r}")
    elif kind not in CLUSTER_SCOPED_KINDS and meta.get("namespace") != namespace:
        problems.append(f"namespace {meta.get('namespace')!r}, expected {namespace!r} (kubectl apply would use the current one)")
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    check(f"Deploy/ (kubectl kustomize): {kind} {where}{meta.get('name')} is {what}, namespaced right", not problems, "; ".join(problems))


def unresolved_references(documents):
    """What the objects name but the output lacks: ServiceAccounts, Secrets, ConfigMaps, Roles, Issuers, Services."""
    missing = []
    have = lambda kind, name, ns=None: any(d.get("kind") == kind and d["metadata"].get("name") == name
                                           and (ns is None or d["metadata"].get("namespace") == ns) for d in documents)
    certificate_secrets = {(d["metadata"].get("namespace"), d["spec"].get("secretName")) for d in by_kind(documents, "Certificate")}
    for d in by_kind(documents, "Deployment"):
        ns, pod = d["metadata"].get("namespace"), d["spec"]["template"]
        if not have("ServiceAccount", pod["spec"].get("serviceAccountName"), ns):
            missing.append(f"Deployment {d['metadata']['name']}: ServiceAccount {pod['spec'].get('serviceAccountName')}")
        for volume in pod["spec"].get("volumes", []):
            secret, config_map = volume.get("secret", {}).get("secretName"), volume.get("configMap", {}).get("name")
            if secret and not have("Secret", secret, ns) and (ns, secret) not in certificate_secrets:
                missing.append(f"Deployment {d['metadata']['name']}: Secret {secret} (no Secret, no Certificate writes it)")
            if config_map and not have("ConfigMap", config_map, ns):
                missing.append(f"Deployment {d['metadata']['name']}: ConfigMap {config_map}")
    for d in by_kind(documents, "ClusterRoleBinding") + by_kind(documents, "RoleBinding"):
        role = d["roleRef"]
        if not have(role["kind"], role["name"]):
            missing.append(f"{d['kind']} {d['metadata']['name']}: {role['kind']} {role['name']}")
        for subject in d.get("subjects", []):
            if subject["kind"] == "ServiceAccount" and not have("ServiceAccount", subject["name"], subject.get("namespace")):
                missing.append(f"{d['kind']} {d['metadata']['name']}: ServiceAccount {subject.get('namespace')}/{subject['name']}")
    for d in by_kind(documents, "Service"):
        ns, selector = d["metadata"].get("namespace"), d["spec"].get("selector", {})
        if not any(x["metadata"].get("namespace") == ns and all(x["spec"]["template"]["metadata"]["labels"].get(k) == v
                                                                for k, v in selector.items())
                   for x in by_kind(documents, "Deployment")):
            missing.append(f"Service {d['metadata']['name']}: no Deployment's pods match selector {selector}")
    for d in by_kind(documents, "Certificate"):
        ref = d["spec"].get("issuerRef", {})
        if ref.get("kind", "Issuer") != "Issuer" or not have("Issuer", ref.get("name"), d["metadata"].get("namespace")):
            missing.append(f"Certificate {d['metadata']['name']}: {ref.get('kind', 'Issuer')} {ref.get('name')}")
    for d in by_kind(documents, "Issuer"):
        secret = d["spec"].get("ca", {}).get("secretName")
        if secret and (d["metadata"].get("namespace"), secret) not in certificate_secrets:
            missing.append(f"Issuer {d['metadata']['name']}: no Certificate writes its CA Secret {secret}")
    for d in by_kind(documents, "MutatingWebhookConfiguration"):
        for webhook in d["webhooks"]:
            svc = webhook["clientConfig"].get("service", {})
            if not have("Service", svc.get("name"), svc.get("namespace")):
                missing.append(f"webhook {webhook['name']}: Service {svc.get('namespace')}/{svc.get('name')}")
        ca_from = d["metadata"].get("annotations", {}).get("cert-manager.io/inject-ca-from", "/")
        if not have("Certificate", ca_from.split("/", 1)[1], ca_from.split("/", 1)[0]):
            missing.append(f"MutatingWebhookConfiguration {d['metadata']['name']}: Certificate {ca_from} for its CA")
    return missing


def check_deploy(root):
    """Deploy/ as `kubectl kustomize` builds it: every object on its own, then how they fit together."""
    deploy = os.path.join(root, "Deploy")
    with open(os.path.join(deploy, "kustomization.yaml")) as f:
        kustomization = yaml.safe_load(f)
    manifests = {n for n in os.listdir(deploy) if n.endswith((".yaml", ".yml")) and n != "kustomization.yaml"}
    check("Deploy/: kustomization.yaml lists every manifest in Deploy/", manifests <= set(kustomization["resources"]),
          sorted(manifests - set(kustomization["resources"])))
    documents = kustomize(root)
    if documents is None:
        return
    namespaces = by_kind(documents, "Namespace")
    check("Deploy/: the output has one Namespace", len(namespaces) == 1, [n["metadata"]["name"] for n in namespaces])
    namespace = namespaces[0]["metadata"]["name"] if namespaces else "needle"
    for doc in documents:
        check_deploy_object(doc, namespace)
    objects = [(d.get("kind"), d["metadata"].get("namespace"), d["metadata"].get("name")) for d in documents]
    check("Deploy/: no two objects share kind, namespace and name", len(objects) == len(set(objects)),
          sorted({o for o in objects if objects.count(o) > 1}))
    missing = unresolved_references(documents)
    check("Deploy/: every ServiceAccount, Secret, ConfigMap, role, Issuer, Certificate and Service an object names is there",
          not missing, "; ".join(missing))
    webhooks = by_kind(documents, "MutatingWebhookConfiguration")
    if not webhooks:
        check("Deploy/: there is a MutatingWebhookConfiguration", False)
        return
    webhook = webhooks[0]
    hook = webhook["webhooks"][0]
    svc = hook["clientConfig"].get("service", {})
    injector = named(documents, "Deployment", "needle-injector")
    check("Deploy/: the webhook calls needle-injector's /inject in the namespace, and is set as needle install sets it",
          svc.get("name") == "needle-injector" and svc.get("namespace") == namespace and svc.get("path") == "/inject"
          and injector is not None and hook["name"] == "needle-injector.needle.dev" and hook["sideEffects"] == "None"
          and hook["admissionReviewVersions"] == ["v1"] and hook["timeoutSeconds"] == 10)
    excluded = [e for e in hook["namespaceSelector"]["matchExpressions"] if e["key"] == "kubernetes.io/metadata.name"]
    check("Deploy/: the webhook never matches its own namespace, kube-system or kube-node-lease",
          excluded and {"kube-system", "kube-node-lease", namespace} <= set(excluded[0]["values"])
          and hook["objectSelector"]["matchExpressions"][0]["operator"] == "DoesNotExist")
    check("Deploy/: the webhook takes its CA from cert-manager",
          "caBundle" not in hook["clientConfig"]
          and webhook["metadata"].get("annotations", {}).get("cert-manager.io/inject-ca-from") == "needle/needle-injector-serving")
    serving = [d for d in by_kind(documents, "Certificate") if d["metadata"]["name"] == "needle-injector-serving"]
    check("Deploy/: the serving Certificate writes the Secret the Deployment mounts, for the Service's names",
          len(serving) == 1 and serving[0]["spec"]["secretName"] == "needle-injector-tls"
          and set(serving[0]["spec"]["dnsNames"]) == {"needle-injector.needle.svc", "needle-injector.needle.svc.cluster.local"}
          and injector is not None and any(v.get("secret", {}).get("secretName") == "needle-injector-tls"
                                           for v in injector["spec"]["template"]["spec"].get("volumes", [])))

    issuer = [d for d in by_kind(documents, "Certificate") if d["metadata"]["name"] == "needle-identity-issuer"]
    anchor = [d for d in by_kind(documents, "Certificate") if d["metadata"]["name"] == "needle-identity-trust-anchor"]
    check("Deploy/: cert-manager makes the identity PKI: a self-signed trust anchor and an issuer CA it signs",
          len(issuer) == 1 and len(anchor) == 1 and issuer[0]["spec"]["isCA"] and anchor[0]["spec"]["isCA"]
          and issuer[0]["spec"]["secretName"] == "needle-identity-issuer"
          and issuer[0]["spec"]["issuerRef"]["name"] == "needle-identity-trust-anchor"
          and anchor[0]["spec"]["issuerRef"]["name"] == "needle-selfsigned")
    trust_volumes = []
    for name in ("needle-injector", "needle-controller"):
        deployment = named(documents, "Deployment", name)
        trust_volumes += [v for v in (deployment or {}).get("spec", {}).get("template", {}).get("spec", {}).get("volumes", [])
                          if v["name"] == "trust-roots"]
    check("Deploy/: the injector and the controller take the trust anchors from the issuer Secret's ca.crt only",
          len(trust_volumes) == 2 and all(v["secret"]["secretName"] == "needle-identity-issuer"
                                          and v["secret"]["items"] == [{"key": "ca.crt", "path": "ca-bundle.crt"}] for v in trust_volumes))

    deploy_destination = named(documents, "Service", "needle-destination")
    deploy_controller = named(documents, "Deployment", "needle-controller")
    deploy_ports = {p["name"]: p["containerPort"] for p in deploy_controller["spec"]["template"]["spec"]["containers"][0]["ports"]} \
        if deploy_controller else {}
    check("Deploy/: the needle-destination Service reaches the controller's destination port 8086",
          deploy_destination is not None and deploy_destination["spec"]["ports"][0]["port"] == 8086
          and deploy_destination["spec"]["ports"][0]["targetPort"] == "destination" and deploy_ports.get("destination") == 8086)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--needle", required=True)
    parser.add_argument("--root", default=".")
    args = parser.parse_args()
    needle = os.path.abspath(args.needle)
    with tempfile.TemporaryDirectory() as work:
        first = check_install(needle, "default", ["--ca-out", os.path.join(work, "ca"), "--identity-out", os.path.join(work, "identity")], work)
        first_identity = check_identity("default", first[0], work) if first else None
        ha = check_install(needle, "ha", ["--ha", "--namespace", "mesh"], work)
        if ha:
            docs = ha[0]
            check("ha: 3 replicas, a PodDisruptionBudget, anti-affinity and failurePolicy Fail",
                  by_kind(docs, "Deployment")[0]["spec"]["replicas"] == 3 and by_kind(docs, "PodDisruptionBudget")
                  and "affinity" in by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]
                  and by_kind(docs, "MutatingWebhookConfiguration")[0]["webhooks"][0]["failurePolicy"] == "Fail")
            controller = named(docs, "Deployment", "needle-controller")
            check("ha: the controller too: 3 replicas, its own PodDisruptionBudget, anti-affinity",
                  controller is not None and controller["spec"]["replicas"] == 3 and named(docs, "PodDisruptionBudget", "needle-controller")
                  and "affinity" in controller["spec"]["template"]["spec"])
        kept = check_install(needle, "upgrade", ["--ca-cert", os.path.join(work, "ca", "ca.crt"), "--ca-key", os.path.join(work, "ca", "ca.key")], work)
        if first and kept:
            check("upgrade with --ca-cert/--ca-key keeps the caBundle", open(first[1], "rb").read() == open(kept[1], "rb").read())
        identity_dir = os.path.join(work, "identity")
        again = check_install(needle, "identity-upgrade", ["--identity-trust-anchors", os.path.join(identity_dir, "trust-anchors.crt"),
                                                           "--identity-issuer-cert", os.path.join(identity_dir, "issuer.crt"),
                                                           "--identity-issuer-key", os.path.join(identity_dir, "issuer.key")], work)
        if first_identity and again:
            kept_identity = check_identity("identity-upgrade", again[0], work)
            check("upgrade with --identity-* keeps the trust anchors", kept_identity is not None and kept_identity[0] == first_identity[0])
        foreign = subprocess.run([needle, "install", "--identity-trust-anchors", first[1] if first else "/dev/null",
                                  "--identity-issuer-cert", os.path.join(identity_dir, "issuer.crt"),
                                  "--identity-issuer-key", os.path.join(identity_dir, "issuer.key")], capture_output=True, text=True)
        check("an issuer the given trust anchors did not sign fails the install, saying why",
              foreign.returncode != 0 and "not signed by" in foreign.stderr, foreign.stderr[-300:])
        bad = subprocess.run([needle, "install", "--failure-policy", "Sometimes"], capture_output=True, text=True)
        check("a bad flag exits non-zero and says what is accepted", bad.returncode != 0 and "Ignore or Fail" in bad.stderr, bad.stderr)

        check_deploy(args.root)

        workloads = os.path.join(args.root, "Tests", "NeedleInstallTests", "Workloads", "workloads.yaml")
        out = subprocess.run([needle, "inject", "--manual", workloads], capture_output=True, text=True, timeout=60)
        check("needle inject --manual exits 0 and reports every workload", out.returncode == 0 and "deployment/web: injected" in out.stderr, out.stderr)
        documents = [d for d in yaml.safe_load_all(out.stdout) if d]
        flat = []
        for d in documents:
            flat += d["items"] if d.get("kind") == "List" else [d]
        validate_all("needle inject --manual", flat)
        names_unique = True
        for d in flat:
            spec = d.get("spec", {})
            template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template") or (d if d["kind"] == "Pod" else None)
            if not template:
                continue
            pod_spec = template.get("spec", {})
            names = [c["name"] for c in pod_spec.get("containers", []) + pod_spec.get("initContainers", [])]
            names_unique &= len(names) == len(set(names))
        check("needle inject --manual: container names stay unique", names_unique)
        plain = subprocess.run([needle, "inject", workloads], capture_output=True, text=True, timeout=60)
        docs = [d for d in yaml.safe_load_all(plain.stdout) if d]
        validate_all("needle inject", [i for d in docs for i in (d["items"] if d.get("kind") == "List" else [d])])
    failed = results.count(False)
    print(f"install conformance: {results.count(True)} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
