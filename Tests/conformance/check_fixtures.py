#!/usr/bin/env python3
"""Conformance check of the Needle injector against the fixture AdmissionReviews.

For every fixture review the `needle review` command is run offline; its AdmissionReview response is
checked (envelope, decision, reason, warnings), its JSON Patch is applied by an independent RFC 6902
implementation (`jsonpatch`), the resulting pod is validated against the Kubernetes schema
(`kubernetes_validate`, strict) and compared with the golden pod, and the patched pod is reviewed a
second time to prove that injection is idempotent.

With `--evanphx BINARY` (Tests/conformance/evanphx_apply, built from evanphx/json-patch's v4 API, which
the Kubernetes API server applies webhook patches with) every patch is also applied by that binary to
the same pod; an error there, or a result that differs from `jsonpatch`'s as parsed JSON, fails the
fixture.

Usage:
    python3 Tests/conformance/check_fixtures.py --needle .build/debug/needle \
        --fixtures Tests/NeedleWebhookTests/Fixtures [--evanphx BINARY] [--only NAME]

Output: one `PASS name` or `FAIL name: why` line per fixture, then
`conformance: N passed, M failed`. Exit status 1 when anything failed, 2 on a usage error.

Dependencies: Python 3.11 standard library, jsonpatch, kubernetes_validate, PyYAML; for --evanphx, the
binary (GO111MODULE=off GOPATH=/usr/share/gocode go build -o BINARY Tests/conformance/evanphx_apply/main.go
with Debian's golang-github-evanphx-json-patch-dev).
"""
from __future__ import annotations

import argparse
import base64
import binascii
import copy
import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import jsonpatch
import kubernetes_validate
import yaml  # noqa: F401  (kubernetes_validate needs it; imported so a missing install fails early)

KUBE_VERSION = "1.33"
TIMEOUT_SECONDS = 30

DECISIONS: dict[str, set[str]] = {
    "not-applicable": {"not a pod", "not a create", "subresource"},
    "skipped": {
        "host network",
        "sidecar already present",
        "control-plane component",
        "windows pod",
        "pod annotation disabled",
        "invalid inject annotation",
        "not enabled",
    },
    "injected": {"pod annotation enabled", "namespace annotation enabled"},
}


class Failure(Exception):
    """A check failed; the message is the reason printed after `FAIL name:`."""


class FixtureInvalid(Failure):
    """The fixture itself is broken (not the injector)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"fixture invalid: {why}")


# ------------------------------------------------------------------------------------------ helpers

def one_line(text: str, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def pointer(path: list[Any]) -> str:
    if not path:
        return "(root)"
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def first_difference(expected: Any, actual: Any, path: list[Any] | None = None) -> str | None:
    """The first place where two JSON values differ, as `pointer: detail`, or None when equal."""
    path = path or []
    if type(expected) is not type(actual):
        # JSON has one number type; 1 and 1.0 are the same value.
        if isinstance(expected, (int, float)) and isinstance(actual, (int, float)) \
                and not isinstance(expected, bool) and not isinstance(actual, bool) and expected == actual:
            return None
        return f"{pointer(path)}: expected {short(expected)}, got {short(actual)}"
    if isinstance(expected, dict):
        for key in sorted(set(expected) | set(actual)):
            if key not in actual:
                return f"{pointer(path + [key])}: missing (expected {short(expected[key])})"
            if key not in expected:
                return f"{pointer(path + [key])}: unexpected {short(actual[key])}"
            diff = first_difference(expected[key], actual[key], path + [key])
            if diff:
                return diff
        return None
    if isinstance(expected, list):
        for index, (e, a) in enumerate(zip(expected, actual)):
            diff = first_difference(e, a, path + [index])
            if diff:
                return diff
        if len(expected) != len(actual):
            return f"{pointer(path)}: expected {len(expected)} items, got {len(actual)}"
        return None
    if expected != actual:
        return f"{pointer(path)}: expected {short(expected)}, got {short(actual)}"
    return None


def short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate_k8s(obj: Any, what: str) -> None:
    """Raises Failure unless obj is valid for KUBE_VERSION (strict: no unknown fields)."""
    try:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        where = pointer(list(getattr(e, "absolute_path", [])))
        message = getattr(e, "message", None) or str(e)
        raise Failure(f"{what} is not a valid {KUBE_VERSION} object at {where}: {one_line(message, 200)}") from None


def maybe_validate_fixture_object(obj: Any, what: str) -> None:
    """Validates a fixture's own object. Pods must validate; other kinds are validated when a
    schema for them exists."""
    if obj is None:
        return
    if not isinstance(obj, dict) or "apiVersion" not in obj or "kind" not in obj:
        raise FixtureInvalid(f"{what} is not a Kubernetes object")
    try:
        validate_k8s(obj, what)
    except kubernetes_validate.SchemaNotFoundError:
        if obj.get("kind") == "Pod":
            raise FixtureInvalid(f"no schema for {what}")
    except Failure as e:
        raise FixtureInvalid(str(e)) from None


def names(items: Any) -> list[str]:
    return [item.get("name") for item in (items or []) if isinstance(item, dict)]


def by_name(items: Any) -> dict[str, Any]:
    return {item["name"]: item for item in (items or []) if isinstance(item, dict) and "name" in item}


# ------------------------------------------------------------------------------------------ runner

class Conformance:
    def __init__(self, needle: str, fixtures: Path, evanphx: str | None = None) -> None:
        self.needle = needle
        self.evanphx = evanphx
        self.fixtures = fixtures
        self.namespaces = fixtures / "namespaces.yaml"
        self.golden_dir = fixtures / "golden"
        with open(fixtures / "expectations.json", encoding="utf-8") as f:
            self.expectations: dict[str, Any] = json.load(f)

    def run_review(self, review_path: Path) -> dict[str, Any]:
        cmd = [self.needle, "review", str(review_path), "--namespaces", str(self.namespaces)]
        config = self.expectations.get(review_path.stem, {}).get("config")
        if config:
            cmd += ["--config", str(self.fixtures / config)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise Failure(f"`needle review` did not finish within {TIMEOUT_SECONDS}s") from None
        except OSError as e:
            raise Failure(f"cannot run {self.needle}: {e}") from None
        if proc.returncode != 0:
            raise Failure(f"`needle review` exited {proc.returncode}: {one_line(proc.stderr or proc.stdout, 300)}")
        try:
            out = json.loads(proc.stdout)
        except json.JSONDecodeError as e:
            raise Failure(f"`needle review` printed no JSON ({e}): {one_line(proc.stdout, 200)}") from None
        if not isinstance(out, dict):
            raise Failure("`needle review` printed JSON that is not an object")
        return out

    def expectation(self, name: str) -> tuple[str, str, int]:
        exp = self.expectations.get(name)
        if not isinstance(exp, dict):
            raise FixtureInvalid("no entry in expectations.json")
        decision, reason, warnings = exp.get("decision"), exp.get("reason"), exp.get("warnings", 0)
        if decision not in DECISIONS:
            raise FixtureInvalid(f"unknown decision {decision!r} in expectations.json")
        if reason not in DECISIONS[decision]:
            raise FixtureInvalid(f"reason {reason!r} does not belong to decision {decision!r}")
        if not isinstance(warnings, int) or isinstance(warnings, bool) or warnings < 0:
            raise FixtureInvalid(f"warnings must be a non-negative integer, not {warnings!r}")
        return decision, reason, warnings

    def golden_pod(self, name: str) -> Any:
        path = self.golden_dir / f"{name}.json"
        if not path.is_file():
            raise Failure(f"golden file {path} is missing")
        try:
            with open(path, encoding="utf-8") as f:
                golden = json.load(f)
        except json.JSONDecodeError as e:
            raise Failure(f"golden file {path} is not JSON: {e}") from None
        if not isinstance(golden, dict) or "pod" not in golden:
            raise Failure(f"golden file {path} has no `pod` key")
        return golden["pod"]

    # -------------------------------------------------------------------------------- one fixture
    def check(self, name: str, review_path: Path) -> list[str]:
        """Returns the list of problems (empty when the fixture passes). Raises Failure for a
        problem that stops the remaining checks."""
        problems: list[str] = []

        try:
            with open(review_path, encoding="utf-8") as f:
                review = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise FixtureInvalid(f"cannot read review: {e}") from None
        request = review.get("request") if isinstance(review, dict) else None
        if not isinstance(request, dict) or not request.get("uid"):
            raise FixtureInvalid("no request or request.uid")
        decision, reason, warnings = self.expectation(name)

        obj = request.get("object")
        kind = (request.get("kind") or {}).get("kind")
        if kind == "Pod" or (isinstance(obj, dict) and obj.get("kind") == "Pod"):
            maybe_validate_fixture_object(obj, "request.object")
            maybe_validate_fixture_object(request.get("oldObject"), "request.oldObject")
        else:
            maybe_validate_fixture_object(obj, "request.object")

        out = self.run_review(review_path)
        response = self.check_envelope(review, out, problems)

        # decision, reason, warnings
        audit = response.get("auditAnnotations")
        if not isinstance(audit, dict):
            problems.append("response.auditAnnotations missing")
        else:
            if audit.get("decision") != decision:
                problems.append(f"decision {audit.get('decision')!r}, expected {decision!r}")
            if audit.get("reason") != reason:
                problems.append(f"reason {audit.get('reason')!r}, expected {reason!r}")
        got_warnings = response.get("warnings") or []
        if not isinstance(got_warnings, list) or not all(isinstance(w, str) for w in got_warnings):
            problems.append("response.warnings is not a list of strings")
        elif len(got_warnings) != warnings:
            problems.append(f"{len(got_warnings)} warnings, expected {warnings}: {one_line(got_warnings, 200)}")

        has_patch = "patch" in response
        if has_patch != (decision == "injected"):
            problems.append(f"{'a' if has_patch else 'no'} patch for decision {decision!r}")

        if has_patch:
            ops = self.decode_patch(response)
            if not isinstance(obj, dict):
                raise Failure("patch returned for a request without an object")
            patched = self.apply(obj, ops)
            if self.evanphx:
                self.check_evanphx(obj, base64.b64decode(response["patch"]), patched, problems)
            self.check_patched(obj, patched, problems)
            golden = self.golden_pod(name)
            if golden is None:
                problems.append("golden pod is null but the response has a patch")
            else:
                diff = first_difference(golden, patched)
                if diff:
                    problems.append(f"differs from golden at {diff}")
            self.check_idempotent(review, patched, problems)
        else:
            golden = self.golden_pod(name)
            if golden is not None:
                problems.append("no patch, but the golden file has a pod")
        return problems

    def check_envelope(self, review: dict[str, Any], out: dict[str, Any], problems: list[str]) -> dict[str, Any]:
        for key in ("apiVersion", "kind"):
            if out.get(key) != review.get(key):
                problems.append(f"response {key} {out.get(key)!r}, expected {review.get(key)!r}")
        response = out.get("response")
        if not isinstance(response, dict):
            raise Failure(f"no `response` object in output{'; ' + '; '.join(problems) if problems else ''}")
        if response.get("uid") != review["request"]["uid"]:
            problems.append(f"response.uid {response.get('uid')!r}, expected {review['request']['uid']!r}")
        if response.get("allowed") is not True:
            problems.append(f"response.allowed is {response.get('allowed')!r}, expected true")
        if ("patch" in response) != ("patchType" in response):
            problems.append("`patch` and `patchType` must be present together")
        if "patchType" in response and response["patchType"] != "JSONPatch":
            problems.append(f"patchType {response['patchType']!r}, expected 'JSONPatch'")
        return response

    @staticmethod
    def decode_patch(response: dict[str, Any]) -> list[dict[str, Any]]:
        encoded = response.get("patch")
        if not isinstance(encoded, str) or not encoded:
            raise Failure("patch is not a non-empty base64 string")
        if len(encoded) % 4 != 0:
            raise Failure("patch is not padded base64 (length not a multiple of 4)")
        try:
            raw = base64.b64decode(encoded, validate=True)  # standard alphabet only, padding required
        except (binascii.Error, ValueError) as e:
            raise Failure(f"patch is not standard base64: {e}") from None
        try:
            ops = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise Failure(f"decoded patch is not JSON: {e}") from None
        if not isinstance(ops, list) or not ops:
            raise Failure("decoded patch is not a non-empty JSON array")
        for index, op in enumerate(ops):
            if not isinstance(op, dict):
                raise Failure(f"patch op {index} is not an object")
            if op.get("op") != "add":
                raise Failure(f"patch op {index} is {op.get('op')!r}; only 'add' is allowed")
            path = op.get("path")
            if not isinstance(path, str) or not path.startswith("/"):
                raise Failure(f"patch op {index} has path {path!r}; it must start with '/'")
            if "value" not in op:
                raise Failure(f"patch op {index} ({path}) has no value")
        return ops

    @staticmethod
    def apply(pod: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            return jsonpatch.apply_patch(copy.deepcopy(pod), ops, in_place=False)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as e:
            raise Failure(f"patch does not apply (RFC 6902): {e}") from None

    def check_evanphx(self, pod: dict[str, Any], raw_patch: bytes, patched: dict[str, Any], problems: list[str]) -> None:
        """Applies the patch's own bytes to the pod with evanphx/json-patch v4 (DecodePatch, then Apply, as the
        API server does) and compares the result with jsonpatch's."""
        with tempfile.TemporaryDirectory(prefix="needle-evanphx-") as work:
            pod_path, patch_path = os.path.join(work, "pod.json"), os.path.join(work, "patch.json")
            with open(pod_path, "w", encoding="utf-8") as f:
                json.dump(pod, f)
            with open(patch_path, "wb") as f:
                f.write(raw_patch)
            try:
                proc = subprocess.run([self.evanphx, pod_path, patch_path], capture_output=True, text=True,
                                      timeout=TIMEOUT_SECONDS, stdin=subprocess.DEVNULL)
            except (OSError, subprocess.TimeoutExpired) as e:
                problems.append(f"cannot run evanphx/json-patch ({self.evanphx}): {e}")
                return
        if proc.returncode != 0:
            problems.append(f"evanphx/json-patch v4 rejects the patch (exit {proc.returncode}): "
                            f"{one_line(proc.stderr or proc.stdout, 300)}")
            return
        try:
            theirs = json.loads(proc.stdout)
        except json.JSONDecodeError as e:
            problems.append(f"evanphx/json-patch printed no JSON ({e}): {one_line(proc.stdout, 200)}")
            return
        diff = first_difference(patched, theirs)
        if diff:
            problems.append(f"evanphx/json-patch v4 and jsonpatch disagree (expected is jsonpatch's) at {diff}")

    @staticmethod
    def check_patched(original: dict[str, Any], patched: dict[str, Any], problems: list[str]) -> None:
        try:
            validate_k8s(patched, "patched pod")
        except Failure as e:
            problems.append(str(e))
        spec = patched.get("spec") or {}
        orig_spec = original.get("spec") or {}

        all_names = names(spec.get("containers")) + names(spec.get("initContainers"))
        dupes = sorted({n for n in all_names if all_names.count(n) > 1})
        if dupes:
            problems.append(f"duplicate container names {dupes}")
        volume_names = names(spec.get("volumes"))
        dupes = sorted({n for n in volume_names if volume_names.count(n) > 1})
        if dupes:
            problems.append(f"duplicate volume names {dupes}")

        for field in ("containers", "initContainers", "volumes"):
            after = by_name(spec.get(field))
            for cname, before in by_name(orig_spec.get(field)).items():
                if cname not in after:
                    problems.append(f"original spec.{field} entry {cname!r} is gone")
                elif after[cname] != before:
                    diff = first_difference(before, after[cname])
                    problems.append(f"original spec.{field} entry {cname!r} changed at {diff}")

        meta = patched.get("metadata") or {}
        orig_meta = original.get("metadata") or {}
        for field in ("annotations", "labels"):
            after = meta.get(field) or {}
            for key, value in (orig_meta.get(field) or {}).items():
                if key not in after:
                    problems.append(f"original {field[:-1]} {key!r} is gone")
                elif after[key] != value:
                    problems.append(f"original {field[:-1]} {key!r} changed from {value!r} to {after[key]!r}")

    def check_idempotent(self, review: dict[str, Any], patched: dict[str, Any], problems: list[str]) -> None:
        again = copy.deepcopy(review)
        again["request"]["object"] = patched
        again["request"]["uid"] = str(uuid.uuid4())
        fd, tmp = tempfile.mkstemp(prefix="needle-review-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(again, f, indent=2)
            try:
                out = self.run_review(Path(tmp))
            except Failure as e:
                problems.append(f"second review: {e}")
                return
            response = out.get("response")
            if not isinstance(response, dict):
                problems.append("second review: no `response` object")
                return
            if response.get("uid") != again["request"]["uid"]:
                problems.append("second review: response.uid does not match")
            if response.get("allowed") is not True:
                problems.append("second review: not allowed")
            if "patch" in response or "patchType" in response:
                why = (response.get("auditAnnotations") or {}).get("reason")
                problems.append(f"second review of the patched pod patched again (reason {why!r}); "
                                "injection is not idempotent")
        finally:
            os.unlink(tmp)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--needle", required=True, help="path to the `needle` CLI binary")
    parser.add_argument("--fixtures", required=True, type=Path,
                        help="fixture directory (reviews/, golden/, namespaces.yaml, expectations.json)")
    parser.add_argument("--evanphx", metavar="BINARY",
                        help="also apply every patch with this evanphx/json-patch v4 helper and compare "
                             "(Tests/conformance/evanphx_apply)")
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="check only this fixture (file name without .json); may be repeated")
    args = parser.parse_args(argv)

    needle = args.needle
    if os.sep not in needle:
        needle = os.path.join(".", needle) if os.path.exists(needle) else needle
    if not (os.path.isfile(needle) and os.access(needle, os.X_OK)):
        print(f"check_fixtures: {args.needle} is not an executable file", file=sys.stderr)
        return 2
    evanphx = None
    if args.evanphx is not None:
        evanphx = os.path.abspath(args.evanphx)
        if not (os.path.isfile(evanphx) and os.access(evanphx, os.X_OK)):
            print(f"check_fixtures: --evanphx {args.evanphx} is not an executable file", file=sys.stderr)
            return 2
    reviews_dir = args.fixtures / "reviews"
    for required in (reviews_dir, args.fixtures / "namespaces.yaml", args.fixtures / "expectations.json"):
        if not required.exists():
            print(f"check_fixtures: {required} does not exist", file=sys.stderr)
            return 2

    try:
        runner = Conformance(os.path.abspath(needle), args.fixtures, evanphx)
    except (OSError, json.JSONDecodeError) as e:
        print(f"check_fixtures: cannot read expectations.json: {e}", file=sys.stderr)
        return 2

    reviews = sorted(reviews_dir.glob("*.json"))
    if args.only:
        wanted = set(args.only)
        unknown = wanted - {p.stem for p in reviews}
        if unknown:
            print(f"check_fixtures: no fixture named {', '.join(sorted(unknown))} in {reviews_dir}", file=sys.stderr)
            return 2
        reviews = [p for p in reviews if p.stem in wanted]

    passed = failed = 0
    for review_path in reviews:
        name = review_path.stem
        try:
            problems = runner.check(name, review_path)
        except Failure as e:
            problems = [str(e)]
        except Exception as e:  # a bug here or a response shape nobody foresaw: report, keep going
            problems = [f"checker error {type(e).__name__}: {e}"]
        if problems:
            failed += 1
            print(f"FAIL {name}: {one_line('; '.join(problems), 1000)}", flush=True)
        else:
            passed += 1
            print(f"PASS {name}", flush=True)

    if not args.only:
        for name in sorted(set(runner.expectations) - {p.stem for p in reviews}):
            failed += 1
            print(f"FAIL {name}: fixture invalid: expectations.json names it but reviews/{name}.json is missing",
                  flush=True)

    print(f"conformance: {passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
