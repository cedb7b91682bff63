"""Synthetic source data for the contrib pipelines, with the target each window must produce.

Every generator is deterministic (a fixed seed) and returns the records to put in the test
server plus, per window, what the target must hold: a few records in each window break the
declared columns (they must land in the rejects table), and some are sent twice (the target
keeps the later copy).
"""

from __future__ import annotations

import copy
import random
from datetime import UTC, datetime, timedelta
from typing import Any

DAY = datetime(2025, 11, 15, tzinfo=UTC)
HOUR = timedelta(hours=1)
#: The two windows every contrib test runs: [10:00, 11:00) and [11:00, 12:00).
WINDOWS = [(DAY + 10 * HOUR, DAY + 11 * HOUR), (DAY + 11 * HOUR, DAY + 12 * HOUR)]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# -- genetic_tests (Elasticsearch) ---------------------------------------------------------

GENETIC_INDEX = "genetic_tests_v1"
GENETIC_MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "@timestamp": {"type": "date"},
        "test_id": {"type": "keyword"},
        "status": {"type": "keyword"},
        "panel": {"type": "keyword"},
        "patient": {"properties": {"id": {"type": "keyword"}, "age": {"type": "integer"}, "sex": {"type": "keyword"}}},
        "sample": {"properties": {"id": {"type": "keyword"}, "type": {"type": "keyword"}, "collected_at": {"type": "date"}}},
        "result": {"properties": {"gene": {"type": "keyword"}, "variant": {"type": "keyword"}, "classification": {"type": "keyword"}}},
        "lab": {"properties": {"code": {"type": "keyword"}}},
        "sequencing": {"properties": {"instrument": {"type": "keyword"}, "run_id": {"type": "keyword"}, "mean_coverage": {"type": "float"}}},
    },
}
GENES = ["BRCA1", "BRCA2", "TP53", "CFTR", "MLH1", "LDLR"]
CLASSES = ["benign", "likely benign", "uncertain significance", "likely pathogenic", "pathogenic"]
SAMPLES = ["blood", "saliva", "buccal swab", "tissue"]
INSTRUMENTS = ["NovaSeq 6000", "NextSeq 2000", "MiSeq"]
PER_WINDOW = 200


def genetic_documents(seed: int = 1115) -> list[dict[str, Any]]:
    """PER_WINDOW reports in each window: 3 invalid, 1 re-sent with an amended classification."""
    rng = random.Random(seed)
    docs: list[dict[str, Any]] = []
    for w, (start, _end) in enumerate(WINDOWS):
        seconds = sorted(rng.sample(range(3600), PER_WINDOW))
        window_docs = []
        for i, second in enumerate(seconds):
            reported = start + timedelta(seconds=second)
            gene = rng.choice(GENES)
            window_docs.append({
                "_id": f"w{w}-{i}",
                "@timestamp": iso(reported),
                "test_id": f"GT-{w}{i:05d}",
                "status": "final",
                "panel": rng.choice(["hereditary cancer", "carrier screening", "cardio"]),
                "patient": {"id": f"P-{rng.randrange(10**6):06d}", "age": rng.randrange(0, 100), "sex": rng.choice("FM")},
                "sample": {"id": f"S-{w}{i:05d}", "type": rng.choice(SAMPLES),
                           "collected_at": iso(reported - timedelta(hours=rng.randrange(6, 240), minutes=rng.randrange(60)))},
                "result": {"gene": f" {gene.lower()} " if i % 9 == 0 else gene, "variant": f"c.{rng.randrange(100, 9000)}del",
                           "classification": rng.choice(CLASSES)},
                "lab": {"code": rng.choice(["LAB-BOS-01", "LAB-SEA-01"])},
                "sequencing": {"instrument": rng.choice(INSTRUMENTS), "run_id": f"R{rng.randrange(1000)}",
                               "mean_coverage": round(rng.uniform(80, 400), 1)},
            })
        # three that break the declared columns: an impossible age, no gene, two ages
        window_docs[5]["patient"]["age"] = 150
        del window_docs[17]["result"]["gene"]
        window_docs[29]["patient"]["age"] = [40, 41]
        # one report re-sent later in the window with an amended classification
        amended = copy.deepcopy(window_docs[50])
        amended["_id"] = f"w{w}-amended"
        amended["@timestamp"] = iso(start + timedelta(seconds=3599, microseconds=500))
        amended["result"]["classification"] = "amended: pathogenic"
        docs.extend(window_docs + [amended])
    return docs


def genetic_is_valid(doc: dict[str, Any]) -> bool:
    age = doc["patient"].get("age")
    return isinstance(age, int) and 0 <= age <= 120 and bool(doc["result"].get("gene"))


def genetic_expected(docs: list[dict[str, Any]], start: datetime, end: datetime) -> dict[str, dict[str, Any]]:
    """test_id -> the target row the window must hold (the later copy of a re-sent report)."""
    out: dict[str, dict[str, Any]] = {}
    for doc in sorted(docs, key=lambda d: d["@timestamp"]):
        reported = parse(doc["@timestamp"])
        if not (start <= reported < end and genetic_is_valid(doc)):
            continue
        collected = parse(doc["sample"]["collected_at"])
        age = doc["patient"]["age"]
        out[doc["test_id"]] = {
            "gene": doc["result"]["gene"].strip().upper(),
            "classification": doc["result"]["classification"],
            "sample_type": doc["sample"]["type"],
            "performing_lab": doc["lab"]["code"],
            "sequencing_instrument": doc["sequencing"]["instrument"],
            "mean_coverage": doc["sequencing"]["mean_coverage"],
            "turnaround_hours": round((reported - collected).total_seconds() / 3600, 2),
            "age_group": "pediatric" if age < 18 else "senior" if age >= 65 else "adult",
        }
    return out


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# -- lab_results (MySQL) --------------------------------------------------------------------

LAB_TABLE_DDL = """
CREATE TABLE lab_results (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  result_id VARCHAR(32) NOT NULL UNIQUE,
  order_id VARCHAR(32) NOT NULL,
  patient_id VARCHAR(32) NOT NULL,
  loinc_code VARCHAR(32) NOT NULL,
  test_name VARCHAR(100),
  value_numeric DECIMAL(12, 4) NULL,
  unit VARCHAR(20),
  reference_low DECIMAL(12, 4) NULL,
  reference_high DECIMAL(12, 4) NULL,
  status VARCHAR(16) NOT NULL,
  collected_at DATETIME(6) NULL,
  updated_at DATETIME(6) NOT NULL,
  internal_note TEXT,
  KEY idx_updated_at (updated_at)
) DEFAULT CHARSET = utf8mb4
"""
LAB_COLUMNS = ("result_id", "order_id", "patient_id", "loinc_code", "test_name", "value_numeric", "unit",
               "reference_low", "reference_high", "status", "collected_at", "updated_at", "internal_note")
#: LOINC code -> (name, unit, reference low, reference high).
LAB_TESTS = {
    "2345-7": ("Glucose", "mg/dL", 70.0, 99.0),
    "2160-0": ("Creatinine", "mg/dL", 0.6, 1.3),
    "718-7": ("Hemoglobin", "g/dL", 12.0, 17.5),
    "2823-3": ("Potassium", "mmol/L", 3.5, 5.1),
    "1988-5": ("C reactive protein", "mg/L", None, 10.0),
}
LAB_PER_WINDOW = 150


def lab_rows(seed: int = 2345) -> list[dict[str, Any]]:
    """LAB_PER_WINDOW results in each window, two of them breaking the declared rules."""
    rng = random.Random(seed)
    rows = []
    for w, (start, _end) in enumerate(WINDOWS):
        for i, second in enumerate(sorted(rng.sample(range(3600), LAB_PER_WINDOW))):
            code = rng.choice(sorted(LAB_TESTS))
            name, unit, low, high = LAB_TESTS[code]
            top = high * 1.5
            updated = start + timedelta(seconds=second)
            rows.append({
                "result_id": f"R{w}{i:05d}", "order_id": f"O{w}{i // 3:05d}", "patient_id": f"P{rng.randrange(10**5):05d}",
                "loinc_code": code, "test_name": name,
                "value_numeric": None if i % 25 == 7 else round(rng.uniform((low or 0) * 0.5, top), 2),
                "unit": unit, "reference_low": low, "reference_high": high,
                "status": "final", "collected_at": updated - timedelta(hours=rng.randrange(1, 30)),
                "updated_at": updated, "internal_note": "not read by the pipeline",
            })
        rows[-LAB_PER_WINDOW + 3]["loinc_code"] = "UNKNOWN-CODE"  # longer than max_length 10
        rows[-LAB_PER_WINDOW + 8]["value_numeric"] = -3.0  # below min 0
    return rows


def lab_is_valid(row: dict[str, Any]) -> bool:
    value = row["value_numeric"]
    return len(row["loinc_code"]) <= 10 and (value is None or value >= 0)


def abnormal_flag(row: dict[str, Any]) -> str | None:
    value, low, high = row["value_numeric"], row["reference_low"], row["reference_high"]
    if value is None or (low is None and high is None):
        return None
    if low is not None and value < low:
        return "L"
    if high is not None and value > high:
        return "H"
    return "N"


def lab_expected(rows: list[dict[str, Any]], end: datetime) -> dict[str, tuple[Any, ...]]:
    """result_id -> (status, value, abnormal_flag) for every valid row updated before ``end``."""
    return {
        r["result_id"]: (r["status"], r["value_numeric"], abnormal_flag(r))
        for r in rows if r["updated_at"] < end and lab_is_valid(r)
    }


# -- incidents (ServiceNow) ----------------------------------------------------------------

STATES = {"1": "New", "2": "In Progress", "3": "On Hold", "6": "Resolved", "7": "Closed"}
PRIORITIES = {"1": "1 - Critical", "2": "2 - High", "3": "3 - Moderate", "4": "4 - Low", "5": "5 - Planning"}
GROUPS = {"a1" * 16: "Service Desk", "b2" * 16: "Network", "c3" * 16: "Database"}
PEOPLE = {"d4" * 16: "Beth Anglin", "e5" * 16: "David Loo", "f6" * 16: "Fred Luddy"}
INCIDENTS_PER_WINDOW = 120


def sn_time(moment: datetime) -> str:
    """A stored ServiceNow date-time: UTC, ``yyyy-MM-dd HH:mm:ss``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _ref(table: str, sys_id: str, label: str) -> dict[str, str]:
    return {"value": sys_id, "display_value": label, "link": f"https://acme.service-now.com/api/now/table/{table}/{sys_id}"}


def incident_records(seed: int = 6) -> list[dict[str, Any]]:
    """INCIDENTS_PER_WINDOW incidents updated in each window; two per window are invalid."""
    rng = random.Random(seed)
    records = []
    for w, (start, _end) in enumerate(WINDOWS):
        for i, second in enumerate(sorted(rng.sample(range(3600), INCIDENTS_PER_WINDOW))):
            updated = start + timedelta(seconds=second)
            opened = updated - timedelta(minutes=rng.randrange(5, 3000))
            state = rng.choice(["1", "2", "3", "6"])
            resolved = sn_time(updated - timedelta(minutes=rng.randrange(0, 5))) if state == "6" else ""
            priority = rng.choice(sorted(PRIORITIES))
            group, person = rng.choice(sorted(GROUPS)), rng.choice(sorted(PEOPLE))
            records.append({
                "sys_id": f"{w:02d}{i:030d}",
                "number": f"INC{w}{i:06d}",
                "short_description": rng.choice(["VPN drops", "Printer offline", "Cannot log in", "Slow database"]),
                "state": {"value": state, "display_value": STATES[state]},
                "priority": {"value": priority, "display_value": PRIORITIES[priority]},
                "category": rng.choice(["network", "hardware", "software", "database"]),
                "assignment_group": _ref("sys_user_group", group, GROUPS[group]),
                "assigned_to": _ref("sys_user", person, PEOPLE[person]),
                "opened_at": sn_time(opened), "resolved_at": resolved,
                "sys_created_on": sn_time(opened), "sys_updated_on": sn_time(updated),
                "work_notes": "not requested by the pipeline",
            })
        records[-INCIDENTS_PER_WINDOW + 4]["opened_at"] = "last tuesday"  # unreadable date-time
        records[-INCIDENTS_PER_WINDOW + 9]["priority"] = {"value": "9", "display_value": "9 - Unknown"}  # above max 5
    return records


def resolve(record: dict[str, Any], when: datetime) -> None:
    """What ServiceNow does when an agent resolves the incident at ``when``."""
    record["state"] = {"value": "6", "display_value": STATES["6"]}
    record["resolved_at"] = record["sys_updated_on"] = sn_time(when)


def incident_is_valid(record: dict[str, Any]) -> bool:
    return record["opened_at"] != "last tuesday" and record["priority"]["value"] != "9"


def incidents_expected(records: list[dict[str, Any]], end: datetime) -> dict[str, tuple[Any, ...]]:
    """sys_id -> (number, state_label, priority_label, group name, is_resolved, resolution_hours)."""
    out = {}
    for r in records:
        if not incident_is_valid(r) or r["sys_updated_on"] >= sn_time(end):
            continue
        hours = None
        if r["resolved_at"]:
            opened = datetime.fromisoformat(r["opened_at"]).replace(tzinfo=UTC)
            hours = round((datetime.fromisoformat(r["resolved_at"]).replace(tzinfo=UTC) - opened).total_seconds() / 3600, 2)
        out[r["sys_id"]] = (r["number"], r["state"]["display_value"], r["priority"]["display_value"],
                            r["assignment_group"]["display_value"], bool(r["resolved_at"]), hours)
    return out
