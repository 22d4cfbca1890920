"""Deployment assets agree with the code.

Compares, and fails on any difference:
- topics (name, partitions, retention) of the Helm values and of Terraform's catalog.tf with the
  code's catalog as `nivesh topics` prints it (crates/bus/src/catalog.rs);
- the Helm services (name, binary) with tools/fleet/src/services.rs;
- what each service consumes in the Helm values (KEDA lag triggers) with the catalog's groups;
- the Helm routes, in order, with tools/fleet/src/routes.rs (the VirtualService is built from them);
- the Cosmos DB containers in catalog.tf with the containers each service's code commits to.

With --sync-topics it first rewrites the generated topic blocks of both files from the catalog.

Usage: consistency.py REPO_ROOT CATALOG_JSON [--sync-topics]
"""

from __future__ import annotations

import json
import pathlib
import re
import sys

import hcl2
import yaml

BEGIN, END = "# BEGIN GENERATED TOPICS", "# END GENERATED TOPICS"


def rust_structs(text: str, struct: str, fields: list[str]) -> list[dict]:
    """Field values of `Struct { a: "x", b: ... }` literals, in source order."""
    out = []
    for body in re.findall(struct + r"\s*\{(.*?)\}", text, re.S):
        item = {}
        for f in fields:
            m = re.search(rf'\b{f}:\s*"([^"]*)"', body)
            if m:
                item[f] = m.group(1)
        if len(item) == len(fields):
            out.append(item)
    return out


def catalog_groups(text: str) -> dict[str, list[str]]:
    groups = {}
    section = text[text.index("pub const GROUPS"):]
    for body in re.findall(r"ConsumerGroupSpec\s*\{(.*?)retry_delays", section, re.S):
        group = re.search(r'group:\s*"([^"]+)"', body).group(1)
        consumes = re.search(r"consumes:\s*&\[(.*?)\]", body, re.S).group(1)
        groups[group] = re.findall(r'"([^"]+)"', consumes)
    return groups


def code_containers(root: pathlib.Path, service: str) -> set[str]:
    """Containers a service commits batches to: `Batch::new(CONST, ..)` resolved to its string."""
    sources = list((root / "services" / service / "src").rglob("*.rs"))
    text = "\n".join(p.read_text(encoding="utf-8") for p in sources)
    consts = dict(re.findall(r'const\s+([A-Z_]+):\s*&str\s*=\s*"([^"]+)"', text))
    found = set()
    for arg in re.findall(r"Batch::new\(\s*([A-Za-z_:]+|\"[^\"]+\")", text):
        name = arg.strip('"').split("::")[-1]
        if arg.startswith('"'):
            found.add(name)
        elif name in consts:
            found.add(consts[name])
    return found


def replace_block(path: pathlib.Path, lines: list[str]) -> None:
    text = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next(i for i, l in enumerate(text) if BEGIN in l)
    end = next(i for i, l in enumerate(text) if END in l)
    # Keep the marker comment lines (BEGIN may continue on the next comment line).
    head = start + 1
    while text[head].lstrip().startswith("#"):
        head += 1
    path.write_text("".join(text[:head] + lines + text[end:]), encoding="utf-8")


def sync_topics(root: pathlib.Path, catalog: list[dict]) -> None:
    values = root / "deploy/helm/nivesh/values.yaml"
    lines = ["  topics:\n"] + [
        f"    - {{name: {t['name']}, partitions: {t['partitions']}, retentionMs: {t['retention_ms']}}}\n" for t in catalog
    ]
    replace_block(values, lines)
    tf = root / "deploy/terraform/catalog.tf"
    width = max(len(t["name"]) for t in catalog) + 2
    lines = ["  topics = {\n"] + [
        "    " + f'"{t["name"]}"'.ljust(width) + f" = {{ partitions = {t['partitions']}, retention_ms = {t['retention_ms']} }}\n"
        for t in catalog
    ] + ["  }\n"]
    replace_block(tf, lines)
    print("  synced topic blocks of values.yaml and catalog.tf from the catalog (run terraform fmt)")


def diff(label: str, want: object, got: object, errors: list[str]) -> None:
    if want != got:
        errors.append(f"{label}:\n      code:   {want}\n      deploy: {got}")


def main(argv: list[str]) -> int:
    root = pathlib.Path(argv[1]).resolve()
    catalog = json.loads(pathlib.Path(argv[2]).read_text(encoding="utf-8"))
    if "--sync-topics" in argv:
        sync_topics(root, catalog)
    errors: list[str] = []
    want_topics = {t["name"]: (t["partitions"], t["retention_ms"]) for t in catalog}

    values = yaml.safe_load((root / "deploy/helm/nivesh/values.yaml").read_text(encoding="utf-8"))
    helm_topics = {t["name"]: (t["partitions"], t["retentionMs"]) for t in values["kafka"]["topics"]}
    for name in sorted(set(want_topics) | set(helm_topics)):
        diff(f"helm topic {name} (partitions, retention ms)", want_topics.get(name), helm_topics.get(name), errors)

    with open(root / "deploy/terraform/catalog.tf", encoding="utf-8") as fh:
        tf_locals = hcl2.load(fh)["locals"][0]
    tf_topics_raw = tf_locals["topics"][0] if isinstance(tf_locals["topics"], list) else tf_locals["topics"]
    tf_topics = {k: (v["partitions"], v["retention_ms"]) for k, v in tf_topics_raw.items()}
    for name in sorted(set(want_topics) | set(tf_topics)):
        diff(f"terraform topic {name} (partitions, retention ms)", want_topics.get(name), tf_topics.get(name), errors)

    services_rs = (root / "tools/fleet/src/services.rs").read_text(encoding="utf-8")
    code_services = {s["name"]: s["binary"] for s in rust_structs(services_rs, "ServiceSpec", ["name", "binary"])}
    helm_services = {n: s["binary"] for n, s in values["services"].items()}
    diff("services (name -> binary)", code_services, helm_services, errors)

    groups = catalog_groups((root / "crates/bus/src/catalog.rs").read_text(encoding="utf-8"))
    helm_consumes = {n: s["consumes"] for n, s in values["services"].items()}
    diff("consumer groups (service -> consumed topics)", groups, helm_consumes, errors)

    routes_rs = (root / "tools/fleet/src/routes.rs").read_text(encoding="utf-8")
    code_routes = [(r["pattern"], r["service"]) for r in rust_structs(routes_rs.split("pub fn route_for")[0], "Route", ["pattern", "service"])]
    helm_routes = [(r["pattern"], r["service"]) for r in values["routes"]]
    diff("routes (in order)", code_routes, helm_routes, errors)

    tf_dbs_raw = tf_locals["cosmos_databases"]
    tf_dbs = tf_dbs_raw[0] if isinstance(tf_dbs_raw, list) else tf_dbs_raw
    diff("cosmos databases (one per service)", sorted(code_services), sorted(tf_dbs), errors)
    for service in code_services:
        have = set(tf_dbs.get(service, {}))
        need = code_containers(root, service) | {"event_ledger"}
        missing = sorted(need - have)
        if missing:
            errors.append(f"cosmos containers of {service}: code commits to {missing}, not in catalog.tf")

    for e in errors:
        print(f"  DRIFT {e}")
    print(
        f"  consistency: {len(want_topics)} topics, {len(code_services)} services, {len(code_routes)} routes, "
        f"{sum(len(v) for v in tf_dbs.values())} containers checked; {len(errors)} differences"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
