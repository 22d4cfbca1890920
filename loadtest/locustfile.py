"""The investor journey for ops, with Locust, against a running `nivesh up` (the :8080 ingress).

The same mix as `cargo run --release -p nivesh-loadtest --bin scenario -- journey`: 70 % NAV
browse (80 % latest NAV of a scheme, 10 % search, 10 % history; public, no token), 20 % the
investor's own portfolio, 10 % a purchase order. Each virtual user is one of the seeded investors
(config/investors.json, KYC VERIFIED) with its own token from the dev identity provider.

    pip install locust
    cargo run --release -p nivesh-fleet -- up          # in another terminal
    locust -f loadtest/locustfile.py --host http://127.0.0.1:8080 \
        --users 20 --spawn-rate 5 --run-time 60s --headless --csv loadtest/results/locust

Environment: NIVESH_IDP_URL (default http://127.0.0.1:8112), NIVESH_AMFI_FILE (scheme codes
to browse; default ../shared/data/amfi/NAVAll-2025-02-25.txt relative to the repository).
Locust reports throughput, percentiles and failures per request name; order completion
(placed -> portfolio.updated) is measured only by the Rust scenario, which reads the events.
"""

import itertools
import json
import os
import random
import urllib.request
import uuid
from pathlib import Path

from locust import HttpUser, between, task

IDP = os.environ.get("NIVESH_IDP_URL", "http://127.0.0.1:8112")
REPO = Path(__file__).resolve().parent.parent
AMFI = Path(
    os.environ.get(
        "NIVESH_AMFI_FILE", REPO.parent / "shared/data/amfi/NAVAll-2025-02-25.txt"
    )
)
ORDER_SCHEMES = ["118834", "120716"]


def _verified_investors():
    data = json.loads((REPO / "config/investors.json").read_text())
    return [i["investorId"] for i in data["investors"] if i["kycStatus"] == "VERIFIED"]


def _schemes():
    """(code, name) of every NAV row of the AMFI file (code;isin;isin;name;nav;date)."""
    out = []
    if AMFI.is_file():
        for line in AMFI.read_text(errors="replace").splitlines():
            parts = line.split(";")
            if len(parts) >= 6 and parts[0].strip().isdigit():
                out.append((parts[0].strip(), parts[3].strip()))
    return out or [(c, c) for c in ORDER_SCHEMES]


INVESTORS = itertools.cycle(_verified_investors())
SCHEMES = _schemes()


def _token(investor_id):
    body = json.dumps({"roles": ["investor"], "investor_id": investor_id}).encode()
    req = urllib.request.Request(
        f"{IDP}/v1/dev/tokens",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.load(resp)["access_token"]


class Investor(HttpUser):
    wait_time = between(0, 0)

    def on_start(self):
        self.investor = next(INVESTORS)
        self.auth = {"Authorization": f"Bearer {_token(self.investor)}"}

    @task(56)
    def nav_latest(self):
        code, _ = random.choice(SCHEMES)
        self.client.get(f"/v1/nav/schemes/{code}", name="/v1/nav/schemes/{code}")

    @task(7)
    def nav_search(self):
        _, name = random.choice(SCHEMES)
        words = [w for w in "".join(c if c.isalnum() else " " for c in name).split() if len(w) >= 4]
        q = (words[0] if words else "fund").lower()
        self.client.get("/v1/nav/schemes", params={"q": q}, name="/v1/nav/schemes?q")

    @task(7)
    def nav_history(self):
        code, _ = random.choice(SCHEMES)
        self.client.get(
            f"/v1/nav/schemes/{code}/history", name="/v1/nav/schemes/{code}/history"
        )

    @task(20)
    def portfolio(self):
        self.client.get(
            f"/v1/investors/{self.investor}/portfolio",
            headers=self.auth,
            name="/v1/investors/{id}/portfolio",
        )

    @task(10)
    def order(self):
        body = {
            "investorId": self.investor,
            "kind": "PURCHASE",
            "schemeCode": random.choice(ORDER_SCHEMES),
            "amount": f"{random.randint(1000, 1999)}.{random.randint(0, 99):02d}",
            "paymentInstrument": "locust@okaxis",
        }
        headers = dict(self.auth, **{"Idempotency-Key": f"locust-{uuid.uuid4()}"})
        with self.client.post(
            "/v1/orders", json=body, headers=headers, name="/v1/orders", catch_response=True
        ) as resp:
            if resp.status_code != 201:
                resp.failure(f"{resp.status_code}: {resp.text[:200]}")
