"""House rules for rendered manifests that no schema expresses.

Schemas accept a Deployment without probes or limits, and checkov checks objects one by one;
these rules look at the whole release: every workload has startup, liveness and readiness probes
on the runtime endpoints, requests and limits, a non-root read-only container, zone spread, a
PodDisruptionBudget and exactly one autoscaler (HPA or KEDA, never both), and every public route
is served.

With --repo ROOT it also reads the services' code: every service whose routes sit behind
`require_auth(` must render NIVESH__AUTH__ISSUER, AUDIENCE and JWKS_URL (https, not the local dev
identity provider, the issuer equal to the mesh's RequestAuthentication), and every variable a
service's code names as required at start-up ("set NIVESH__... to") must be rendered.

Usage: policy.py [--repo ROOT] rendered.yaml...   Exit status 1 on any violation.
"""

from __future__ import annotations

import pathlib
import re
import sys

import yaml

AUTH_ENV = ("NIVESH__AUTH__ISSUER", "NIVESH__AUTH__AUDIENCE", "NIVESH__AUTH__JWKS_URL")


def code_requirements(root: pathlib.Path) -> tuple[set[str], dict[str, set[str]]]:
    """Services with protected routes, and the variables each one refuses to start without."""
    protected, required = set(), {}
    for src in sorted((root / "services").glob("*/src")):
        name = src.parent.name
        text = "\n".join(f.read_text(encoding="utf-8") for f in src.rglob("*.rs"))
        if "require_auth(" in text:
            protected.add(name)
        required[name] = set(re.findall(r"set (NIVESH__[A-Z0-9_]+) to", text))
    return protected, required


def check_code_env(objs: list[dict], protected: set[str], required: dict[str, set[str]]) -> list[str]:
    errors = []
    issuers = [r["issuer"] for o in objs if o["kind"] == "RequestAuthentication" for r in o["spec"].get("jwtRules", [])]
    for d in (o for o in objs if o["kind"] == "Deployment"):
        service = d["spec"]["template"]["metadata"].get("labels", {}).get("nivesh.example/service")
        for c in d["spec"]["template"]["spec"].get("containers", []):
            cid = f"{d['metadata']['name']}/{c['name']}"
            env = {e["name"]: e for e in c.get("env", [])}
            if service in protected:
                for var in AUTH_ENV:
                    value = (env.get(var) or {}).get("value", "")
                    if not value:
                        errors.append(f"{cid}: has protected routes but renders no {var}")
                    elif var != "NIVESH__AUTH__AUDIENCE" and (
                        not value.startswith("https://") or re.search(r"//(127\.|localhost)", value)
                    ):
                        errors.append(f"{cid}: {var} must be the identity provider's https URL, is {value!r}")
                issuer = (env.get("NIVESH__AUTH__ISSUER") or {}).get("value")
                if issuer and issuers and issuer not in issuers:
                    errors.append(f"{cid}: NIVESH__AUTH__ISSUER {issuer!r} is not the mesh's RequestAuthentication issuer {issuers}")
            for var in sorted(required.get(service, ())):
                if var not in env:
                    errors.append(f"{cid}: the code refuses to start without {var}, which is not rendered")
    return errors

PROBES = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}


def labels_match(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def check(path: str, code: tuple[set[str], dict[str, set[str]]] | None = None) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        objs = [o for o in yaml.safe_load_all(fh) if o]
    by_kind: dict[str, list[dict]] = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    errors: list[str] = []
    deployments = by_kind.get("Deployment", [])
    if not deployments:
        errors.append("no Deployment rendered")
    hpa_targets = [h["spec"]["scaleTargetRef"]["name"] for h in by_kind.get("HorizontalPodAutoscaler", [])]
    keda_targets = [s["spec"]["scaleTargetRef"]["name"] for s in by_kind.get("ScaledObject", [])]
    flagger_targets = [c["spec"]["targetRef"]["name"] for c in by_kind.get("Canary", [])]
    for d in deployments:
        name = d["metadata"]["name"]
        pod = d["spec"]["template"]["spec"]
        pod_labels = d["spec"]["template"]["metadata"].get("labels", {})
        sec = pod.get("securityContext", {})
        if not sec.get("runAsNonRoot"):
            errors.append(f"{name}: pod securityContext.runAsNonRoot is not true")
        if pod.get("terminationGracePeriodSeconds", 30) < 20:
            errors.append(f"{name}: terminationGracePeriodSeconds below the services' drain time")
        zones = [t for t in pod.get("topologySpreadConstraints", []) if t.get("topologyKey") == "topology.kubernetes.io/zone"]
        if not zones:
            errors.append(f"{name}: no topology spread across zones")
        for c in pod.get("containers", []):
            cid = f"{name}/{c['name']}"
            for probe, want in PROBES.items():
                got = (c.get(probe) or {}).get("httpGet", {}).get("path")
                if got != want:
                    errors.append(f"{cid}: {probe} must GET {want}, has {got!r}")
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in res.get(part, {}):
                        errors.append(f"{cid}: resources.{part}.{r} missing")
            csec = c.get("securityContext", {})
            if csec.get("privileged") or csec.get("allowPrivilegeEscalation", True):
                errors.append(f"{cid}: privileged or privilege escalation allowed")
            if not csec.get("readOnlyRootFilesystem"):
                errors.append(f"{cid}: root filesystem is writable")
        track = pod_labels.get("nivesh.example/track")
        if track == "stable":
            scalers = hpa_targets.count(name) + keda_targets.count(name)
            if scalers != 1 and name not in flagger_targets:
                errors.append(f"{name}: {scalers} autoscalers (want exactly one: HPA or KEDA)")
            pdbs = [p for p in by_kind.get("PodDisruptionBudget", []) if labels_match(p["spec"]["selector"].get("matchLabels"), pod_labels)]
            if len(pdbs) != 1:
                errors.append(f"{name}: {len(pdbs)} PodDisruptionBudgets select it (want 1)")
    services = {s["metadata"]["name"] for s in by_kind.get("Service", [])}
    for vs in by_kind.get("VirtualService", []):
        for route in vs["spec"].get("http", []):
            for dest in route.get("route", []):
                host = dest["destination"]["host"].split(".")[0]
                if host not in services:
                    errors.append(f"VirtualService {vs['metadata']['name']}: route {route.get('name')} targets missing Service {host}")
    if not any(n["spec"].get("podSelector") == {} for n in by_kind.get("NetworkPolicy", [])):
        errors.append("no default-deny NetworkPolicy")
    if code is not None:
        errors.extend(check_code_env(objs, *code))
    return [f"{path}: {e}" for e in errors]


def main(argv: list[str]) -> int:
    args = argv[1:]
    code = None
    if args[:1] == ["--repo"]:
        code = code_requirements(pathlib.Path(args[1]))
        if not code[0]:
            print(f"  POLICY no service under {args[1]}/services uses require_auth: wrong --repo?")
            return 1
        args = args[2:]
    errors = [e for path in args for e in check(path, code)]
    for e in errors:
        print(f"  POLICY {e}")
    extra = f"; {len(code[0])} services with protected routes checked for [auth]" if code else ""
    print(f"  policy: {len(args)} releases, {len(errors)} violations{extra}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
