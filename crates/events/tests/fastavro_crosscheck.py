#!/usr/bin/env python3
"""Cross-checks nivesh-events' Avro single-object encoding against fastavro, an independent
implementation. Driven by tests/fastavro_crosscheck.rs:

    fastavro_crosscheck.py SCHEMA_DIR WORK_DIR

1. Reads every SCHEMA_DIR/<full name>/v<N>.avsc, computes each fingerprint ITSELF (fastavro's
   Parsing Canonical Form + CRC-64-AVRO), independent of the Rust catalog.
2. Decodes every WORK_DIR/rust/<name>.bin the Rust side wrote: checks the C3 01 marker, looks the
   8-byte little-endian fingerprint up in its own table, strips the 10-byte header and decodes the
   body with fastavro.schemaless_reader.
3. Encodes its own records with fastavro.schemaless_writer (+ header) into WORK_DIR/python/*.bin
   for the Rust side to decode.
4. Prints one JSON document on stdout: {"decoded": {...}, "written": {...}}, values normalized
   (uuid -> string, timestamp-micros -> integer micros, date -> ISO string) so the Rust test can
   compare field by field.
"""

import datetime
import glob
import io
import json
import os
import sys
import uuid

import fastavro
from fastavro.schema import fingerprint, parse_schema, to_parsing_canonical_form

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def load_schemas(schema_dir):
    """(full name, version) -> parsed schema, and fingerprint bytes -> (full name, version)."""
    schemas, by_fp = {}, {}
    for path in sorted(glob.glob(os.path.join(schema_dir, "*", "v*.avsc"))):
        name = os.path.basename(os.path.dirname(path))
        version = int(os.path.basename(path)[1:-len(".avsc")])
        with open(path, encoding="utf-8") as fh:
            parsed = parse_schema(json.load(fh))
        schemas[(name, version)] = parsed
        # fastavro returns the 8 fingerprint bytes as hex, in the little-endian order the
        # single-object header uses.
        fp = bytes.fromhex(fingerprint(to_parsing_canonical_form(parsed), "CRC-64-AVRO"))
        by_fp.setdefault(fp, (name, version))
    return schemas, by_fp


def normalize(value):
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime.datetime):
        return (value - EPOCH) // datetime.timedelta(microseconds=1)
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


def decode(path, schemas, by_fp):
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:2] != b"\xc3\x01":
        raise SystemExit(f"{path}: no single-object marker")
    fp = data[2:10]
    if fp not in by_fp:
        raise SystemExit(f"{path}: fingerprint {fp.hex()} matches no schema file")
    name, version = by_fp[fp]
    body = io.BytesIO(data[10:])
    record = fastavro.schemaless_reader(body, schemas[(name, version)], None)
    if body.read():
        raise SystemExit(f"{path}: trailing bytes after the record")
    return {"full_name": name, "version": version, "record": normalize(record)}


def meta(event_type, version, causation):
    return {
        "event_id": "0195a0b1-2c3d-7e4f-8a9b-0c1d2e3f4a5b",
        "event_type": event_type,
        "occurred_at": datetime.datetime(2025, 2, 25, 18, 29, 59, 999999, tzinfo=datetime.timezone.utc),
        "producer": "fastavro",
        "causation_key": causation,
        "schema_version": version,
    }


def dec(unscaled, scale):
    return {"unscaled": unscaled, "scale": scale}


def python_records():
    """What Python writes: (file stem, full name, version, record)."""
    raw_v2 = {
        "meta": meta("nivesh.nav.RawNavReceived", 2, "file-py:3"),
        "file_id": "file-py",
        "source": "KFINTECH",
        "line_number": 3,
        "scheme_code": "148921",
        "isin_growth": "INF846K01N65",
        "isin_reinvestment": None,
        "scheme_name": "Axis Nifty 50 Index Fund - Direct Growth (निफ्टी)",
        "amc": "Axis Mutual Fund",
        "scheme_type": None,
        "category": "Other Scheme - Index Funds",
        "nav": dec(1234567890123, 8),
        "nav_date": datetime.date(2025, 2, 25),
        "repurchase_price": None,
        "sale_price": dec(-5, 0),
        "file_date": datetime.date(1960, 1, 1),
        "plan": "Direct",
        "option": None,
    }
    raw_v1 = {k: v for k, v in raw_v2.items() if k not in ("plan", "option")}
    raw_v1["meta"] = meta("nivesh.nav.RawNavReceived", 1, None)
    return [
        ("raw_v2", "nivesh.nav.RawNavReceived", 2, raw_v2),
        ("raw_v1", "nivesh.nav.RawNavReceived", 1, raw_v1),
        ("validated", "nivesh.nav.NavValidated", 1, {
            "meta": meta("nivesh.nav.NavValidated", 1, "0195a0b1-0000-7000-8000-000000000000"),
            "scheme_code": "148921", "scheme_name": "Axis Nifty 50 Index Fund", "amc": None,
            "category": "Other Scheme - Index Funds", "scheme_type": "Open Ended Schemes",
            "isin_growth": None, "isin_reinvestment": "INF846K01N73",
            "nav": dec(100, 2), "nav_date": datetime.date(2025, 2, 25),
            "previous_nav": dec(9999, 3), "previous_nav_date": datetime.date(2025, 2, 24),
            "anomaly": False, "anomaly_reason": None, "change_kind": "NEW",
            "file_id": "file-py", "line_number": 3, "source": "KFINTECH",
        }),
        ("rejected", "nivesh.nav.NavRejected", 1, {
            "meta": meta("nivesh.nav.NavRejected", 1, None),
            "file_id": "file-py", "line_number": 4, "source": "CAMS", "scheme_code": "148921",
            "nav_date": None, "reason_code": "NON_POSITIVE", "reason": "NAV must be positive",
        }),
        ("published", "nivesh.nav.NavPublished", 1, {
            "meta": meta("nivesh.nav.NavPublished", 1, "x"),
            "scheme_code": "148921", "scheme_name": "Axis Nifty 50 Index Fund", "amc": "Axis Mutual Fund",
            "category": None, "nav": dec(9223372036854775807, 8), "nav_date": datetime.date(2025, 2, 25),
            "anomaly": True, "change_kind": "CORRECTION",
        }),
    ]


def main():
    schema_dir, work_dir = sys.argv[1], sys.argv[2]
    schemas, by_fp = load_schemas(schema_dir)
    fp_of = {key: fp for fp, key in by_fp.items()}

    decoded = {}
    for path in sorted(glob.glob(os.path.join(work_dir, "rust", "*.bin"))):
        decoded[os.path.basename(path)[:-4]] = decode(path, schemas, by_fp)

    written = {}
    os.makedirs(os.path.join(work_dir, "python"), exist_ok=True)
    for stem, name, version, record in python_records():
        out = io.BytesIO()
        out.write(b"\xc3\x01" + fp_of[(name, version)])
        fastavro.schemaless_writer(out, schemas[(name, version)], record)
        with open(os.path.join(work_dir, "python", stem + ".bin"), "wb") as fh:
            fh.write(out.getvalue())
        written[stem] = {"full_name": name, "version": version, "record": normalize(record)}

    json.dump({"fastavro": fastavro.__version__, "decoded": decoded, "written": written}, sys.stdout,
              ensure_ascii=False)


if __name__ == "__main__":
    main()
