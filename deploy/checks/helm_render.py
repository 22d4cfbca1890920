"""helm lint --strict and helm template, through the Helm v4 SDK bundled in helm-python-sdk.

The PyPI package ships Helm as a shared library (libhelm_c) rather than a `helm` executable, so
this script is our `helm`: it merges values files the way `helm -f a -f b` does (maps merge,
everything else is replaced, later files win), lints with the merged values in strict mode, and
writes the rendered manifests of each environment to one multi-document YAML file.

Usage: helm_render.py CHART OUT_DIR ENV=values-a.yaml[,values-b.yaml] ...
Exit status 1 when any lint message is a warning or an error (strict) or rendering fails.
"""

from __future__ import annotations

import copy
import pathlib
import sys

import helm_python as helm
import yaml

SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}


def merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_values(chart: pathlib.Path, files: list[str]) -> dict:
    values: dict = {}
    for name in files:
        with open(chart / name, encoding="utf-8") as fh:
            values = merge(values, yaml.safe_load(fh) or {})
    return values


def main(argv: list[str]) -> int:
    chart_dir = pathlib.Path(argv[1]).resolve()
    out_dir = pathlib.Path(argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = False
    chart = helm.Chart.load(str(chart_dir))
    for spec in argv[3:]:
        env, _, files = spec.partition("=")
        values = load_values(chart_dir, files.split(","))
        report = helm.lint(str(chart_dir), values, strict=True, kube_version="v1.31.0")
        problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2]
        for m in problems:
            print(f"  lint {env}: [{SEVERITY.get(m['severity'])}] {m.get('path')}: {m.get('error')}")
        for err in report.get("errors") or []:
            print(f"  lint {env}: {err}")
        if problems or report.get("errors"):
            failed = True
            continue
        try:
            rendered = chart.render(values, name="nivesh", namespace="nivesh", is_install=True)
        except helm.HelmError as e:
            print(f"  template {env}: {e}")
            failed = True
            continue
        docs = []
        for path in sorted(rendered):
            if not path.endswith((".yaml", ".yml")) or not rendered[path].strip():
                continue
            docs.append(f"# Source: {path}\n{rendered[path].strip()}\n")
        (out_dir / f"{env}.yaml").write_text("---\n".join(docs), encoding="utf-8")
        count = sum(1 for d in yaml.safe_load_all((out_dir / f"{env}.yaml").read_text()) if d)
        print(f"  {env}: lint clean, {count} objects rendered")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
