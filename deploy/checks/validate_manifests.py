"""Strict schema validation of rendered manifests.

Built-in kinds go to kubernetes-validate in strict mode (unknown fields are errors, which plain
`kubectl apply` would silently drop); custom resources are handed to validate_crds.mjs, which
checks them against the KEDA, Istio and Prometheus Operator models.

Usage: validate_manifests.py KUBE_VERSION CRD_JSON_OUT rendered.yaml...
Exit status 1 when a built-in object is invalid.
"""

from __future__ import annotations

import json
import sys

import kubernetes_validate as kv
import yaml

BUILTIN_GROUPS = {"v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v2", "networking.k8s.io/v1", "rbac.authorization.k8s.io/v1"}


def main(argv: list[str]) -> int:
    version, crd_out, files = argv[1], argv[2], argv[3:]
    crds, failures, checked = [], 0, 0
    for path in files:
        with open(path, encoding="utf-8") as fh:
            for obj in yaml.safe_load_all(fh):
                if not obj:
                    continue
                if obj.get("apiVersion") not in BUILTIN_GROUPS:
                    crds.append({"file": path, "object": obj})
                    continue
                try:
                    kv.validate(obj, version, strict=True)
                    checked += 1
                except kv.ValidationError as e:
                    failures += 1
                    where = ".".join(str(p) for p in e.path) if hasattr(e, "path") else ""
                    print(f"  INVALID {path}: {obj['kind']}/{obj['metadata'].get('name')}: {where}: {e.message}")
                except kv.SchemaNotFoundError as e:
                    failures += 1
                    print(f"  NO SCHEMA {path}: {obj['kind']} {obj['apiVersion']}: {e}")
    with open(crd_out, "w", encoding="utf-8") as fh:
        json.dump(crds, fh)
    print(f"  built-in objects: {checked} valid, {failures} invalid (kubernetes {version}, strict)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
