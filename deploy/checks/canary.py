"""The canary overlay and the rollback path, as rendered.

- CANARY render (values-prod.yaml + values-canary.yaml): every public route sends the canary
  header to the `canary` subset, then splits stable/canary by exactly the overlay's weight
  (10/90 for step 1), and every service has a canary Deployment.
- ROLLBACK render (the environment without the overlay: what `helm upgrade` without
  values-canary.yaml, or `helm rollback`, leaves): no canary Deployment, no canary subset in any
  route, every route 100 % stable.

Usage: canary.py CANARY.yaml ROLLBACK.yaml EXPECTED_CANARY_WEIGHT   Exit status 1 on a violation.
"""

from __future__ import annotations

import sys

import yaml


def load(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [o for o in yaml.safe_load_all(fh) if o]


def public_routes(objs: list[dict]) -> list[dict]:
    vs = [o for o in objs if o["kind"] == "VirtualService" and o["metadata"]["name"] == "nivesh-public"]
    if len(vs) != 1:
        raise SystemExit(f"expected one nivesh-public VirtualService, found {len(vs)}")
    return vs[0]["spec"]["http"]


def weights(route: dict) -> dict[str, int]:
    return {d["destination"]["subset"]: d.get("weight", 100) for d in route.get("route", [])}


def check(canary_path: str, rollback_path: str, weight: int) -> list[str]:
    errors: list[str] = []
    canary, rollback = load(canary_path), load(rollback_path)

    services = sorted(
        d["metadata"]["name"] for d in rollback if d["kind"] == "Deployment"
    )
    canary_deps = {d["metadata"]["name"] for d in canary if d["kind"] == "Deployment"}
    for s in services:
        if f"{s}-canary" not in canary_deps:
            errors.append(f"canary: no canary Deployment for {s}")
    routes = public_routes(canary)
    split = [r for r in routes if not r["name"].endswith("-canary-header")]
    headers = [r for r in routes if r["name"].endswith("-canary-header")]
    if len(headers) != len(split):
        errors.append(f"canary: {len(split)} routes but {len(headers)} header routes to the canary")
    for r in headers:
        if weights(r) != {"canary": 100}:
            errors.append(f"canary: {r['name']} does not send the header to the canary only: {weights(r)}")
    for r in split:
        w = weights(r)
        if w != {"stable": 100 - weight, "canary": weight}:
            errors.append(f"canary: {r['name']} splits {w}, expected stable {100 - weight} / canary {weight}")

    leftovers = sorted(n for n in (d["metadata"]["name"] for d in rollback if d["kind"] == "Deployment") if n.endswith("-canary"))
    if leftovers:
        errors.append(f"rollback: canary Deployments still rendered: {leftovers}")
    for r in public_routes(rollback):
        if r["name"].endswith("-canary-header"):
            errors.append(f"rollback: header route {r['name']} still rendered")
        if weights(r) != {"stable": 100}:
            errors.append(f"rollback: {r['name']} is not 100 % stable: {weights(r)}")
    return errors


def main() -> int:
    canary_path, rollback_path, weight = sys.argv[1], sys.argv[2], int(sys.argv[3])
    errors = check(canary_path, rollback_path, weight)
    for e in errors:
        print(f"  CANARY POLICY: {e}")
    if not errors:
        print(f"  canary split stable {100 - weight} / canary {weight} on every route; rollback render is 100 % stable")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
