#!/usr/bin/env python3
"""Validate Kubernetes manifests the way a strict API server would, offline.

* Built-in kinds: against the Kubernetes OpenAPI schemas shipped by `kubernetes-validate`, in
  strict mode (unknown fields are errors), for every `--k8s-version`.
* Custom resources (SpinApp, SpinAppExecutor, ServiceMonitor, PrometheusRule): against the
  `openAPIV3Schema` of the CustomResourceDefinitions given with `--crd`, made strict the way the
  API server prunes (an object with `properties` and neither `additionalProperties` nor
  `x-kubernetes-preserve-unknown-fields` accepts no other field). The CRDs themselves are
  validated as CustomResourceDefinitions first. `metadata` is checked as an ObjectMeta.
* A kind with no schema at all is an error, not a warning.
* Policy for pod templates (Deployments, test Pods): the restricted Pod Security Standard as this
  project applies it (non-root, read-only root filesystem, all capabilities dropped, no privilege
  escalation, RuntimeDefault seccomp), resources with requests and limits, and liveness/readiness
  probes on /health/live and /health/ready. SpinApps must probe the same paths.
* `--rules-out DIR`: the `spec` of every PrometheusRule is written there, for `promtool check rules`.

Exit status 0 when every document passes, 1 otherwise. Usage:
  check_manifests.py --k8s-version 1.33 --crd crds.yaml [--rules-out DIR] FILE...
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys

import jsonschema
import yaml
from kubernetes_validate import utils as kv


def load_docs(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d]


def strictify(schema):
    """Return a JSON Schema that rejects fields the CRD schema does not declare."""
    s = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for key, value in list(node.items()):
                if key == "properties" and isinstance(value, dict):
                    for sub in value.values():
                        walk(sub)
                elif key in ("items", "additionalProperties"):
                    walk(value)
                elif key in ("allOf", "anyOf", "oneOf") and isinstance(value, list):
                    for sub in value:
                        walk(sub)
        return node

    walk(s)
    # `metadata` is checked separately as an ObjectMeta.
    s.get("properties", {}).pop("metadata", None)
    s.get("properties", {}).setdefault("metadata", {"type": "object"})
    return s


class Checker:
    def __init__(self, versions):
        self.versions = versions
        self.crds = {}  # (group/version, kind) -> json schema
        self.errors = 0

    def fail(self, where, msg):
        self.errors += 1
        print(f"FAIL {where}: {msg}")

    def add_crd_file(self, path):
        for doc in load_docs(path):
            where = f"{path}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
            if doc.get("kind") != "CustomResourceDefinition":
                self.fail(where, "not a CustomResourceDefinition")
                continue
            self.validate_builtin(doc, where)
            spec = doc["spec"]
            for ver in spec["versions"]:
                schema = ver.get("schema", {}).get("openAPIV3Schema")
                if not schema:
                    self.fail(where, f"version {ver['name']} has no openAPIV3Schema")
                    continue
                strict = strictify(schema)
                try:
                    jsonschema.Draft7Validator.check_schema(strict)
                except jsonschema.SchemaError as e:
                    self.fail(where, f"openAPIV3Schema is not a valid schema: {e.message}")
                    continue
                key = (f"{spec['group']}/{ver['name']}", spec["names"]["kind"])
                self.crds[key] = strict

    def validate_builtin(self, doc, where):
        ok = True
        for version in self.versions:
            try:
                kv.validate(doc, version, strict=True)
            except kv.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                self.fail(where, f"Kubernetes {e.version} schema: {path}: {e.message}")
                ok = False
            except kv.SchemaNotFoundError as e:
                self.fail(where, f"no schema: {e.message}")
                return False
        return ok

    def validate_custom(self, doc, where):
        schema = self.crds[(doc["apiVersion"], doc["kind"])]
        validator = jsonschema.Draft7Validator(schema)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
        for e in errors:
            path = ".".join(str(p) for p in e.path)
            msg = e.message if e.validator != "not" else f"forbidden combination: {json.dumps(e.validator_value)}"
            self.fail(where, f"CRD schema: {path}: {msg}")
        # metadata as an ObjectMeta, through a kind that has nothing else required
        meta_doc = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc.get("metadata", {})}
        for version in self.versions:
            try:
                kv.validate(meta_doc, version, strict=True)
            except kv.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                self.fail(where, f"metadata: {path}: {e.message}")

    def check_doc(self, doc, where, rules_out):
        if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
            self.fail(where, "not a Kubernetes object (apiVersion/kind missing)")
            return
        if (doc["apiVersion"], doc["kind"]) in self.crds:
            self.validate_custom(doc, where)
        else:
            self.validate_builtin(doc, where)
        self.policy(doc, where)
        if doc["kind"] == "PrometheusRule" and rules_out:
            name = doc["metadata"]["name"]
            out = os.path.join(rules_out, f"{os.path.basename(where.split(':')[0])}-{name}.rules.yml")
            with open(out, "w", encoding="utf-8") as f:
                yaml.safe_dump(doc.get("spec", {}), f, sort_keys=False)

    # ---- policy ---------------------------------------------------------------------------
    def policy(self, doc, where):
        kind = doc["kind"]
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            self.pod_policy(doc["spec"]["template"]["spec"], where, probes=kind == "Deployment")
        elif kind == "Pod":
            self.pod_policy(doc["spec"], where, probes=False)
        elif kind == "SpinApp":
            checks = doc["spec"].get("checks", {})
            self.expect_path(checks.get("liveness"), "/health/live", where, "spec.checks.liveness")
            self.expect_path(checks.get("readiness"), "/health/ready", where, "spec.checks.readiness")
            res = doc["spec"].get("resources", {})
            if not res.get("requests") or not res.get("limits"):
                self.fail(where, "spec.resources needs requests and limits")

    def expect_path(self, probe, path, where, field):
        got = (probe or {}).get("httpGet", {}).get("path")
        if got != path:
            self.fail(where, f"{field} must GET {path} (got {got!r})")

    def pod_policy(self, pod, where, probes):
        psc = pod.get("securityContext", {})
        if psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            self.fail(where, "pod securityContext.seccompProfile.type must be RuntimeDefault")
        if pod.get("hostNetwork") or pod.get("hostPID") or pod.get("hostIPC"):
            self.fail(where, "host namespaces are not allowed")
        for c in pod.get("initContainers", []) + pod.get("containers", []):
            cw = f"{where} container {c.get('name')}"
            sc = c.get("securityContext", {})
            if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
                self.fail(cw, "runAsNonRoot must be true")
            if (sc.get("runAsUser", psc.get("runAsUser", 1)) or 0) == 0:
                self.fail(cw, "must not run as uid 0")
            if sc.get("allowPrivilegeEscalation") is not False:
                self.fail(cw, "allowPrivilegeEscalation must be false")
            if sc.get("readOnlyRootFilesystem") is not True:
                self.fail(cw, "readOnlyRootFilesystem must be true")
            if sc.get("privileged"):
                self.fail(cw, "privileged is not allowed")
            if "ALL" not in sc.get("capabilities", {}).get("drop", []):
                self.fail(cw, "capabilities.drop must include ALL")
            if sc.get("capabilities", {}).get("add"):
                self.fail(cw, "capabilities.add is not allowed")
            seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
            if seccomp != "RuntimeDefault":
                self.fail(cw, "seccompProfile.type must be RuntimeDefault")
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(part, {}):
                        self.fail(cw, f"resources.{part}.{r} is required")
            if probes:
                self.expect_path(c.get("livenessProbe"), "/health/live", cw, "livenessProbe")
                self.expect_path(c.get("readinessProbe"), "/health/ready", cw, "readinessProbe")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k8s-version", action="append", required=True, dest="versions")
    ap.add_argument("--crd", action="append", default=[])
    ap.add_argument("--rules-out")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    supported = kv.all_versions()
    for v in args.versions:
        if not any(s.startswith(v + ".") or s == v for s in supported):
            print(f"FAIL kubernetes-validate {kv.__version__} has no schemas for {v}")
            return 1

    checker = Checker(args.versions)
    for crd in args.crd:
        checker.add_crd_file(crd)
    count = 0
    for path in args.files:
        try:
            docs = load_docs(path)
        except yaml.YAMLError as e:
            checker.fail(path, f"YAML: {e}")
            continue
        if not docs:
            checker.fail(path, "no documents")
        for i, doc in enumerate(docs):
            name = doc.get("metadata", {}).get("name") if isinstance(doc, dict) else None
            checker.check_doc(doc, f"{path}: {doc.get('kind') if isinstance(doc, dict) else '?'}/{name} (#{i})", args.rules_out)
            count += 1
    status = "ok" if checker.errors == 0 else f"{checker.errors} error(s)"
    print(f"check_manifests: {count} objects in {len(args.files)} files, "
          f"Kubernetes {', '.join(args.versions)}, {len(checker.crds)} CRD kinds: {status}")
    return 0 if checker.errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
