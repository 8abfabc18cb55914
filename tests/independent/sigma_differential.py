#!/usr/bin/env python3
"""Differential reference for Parapet's Sigma engine: pySigma converts rules to SQL (the
pySigma-backend-sqlite backend) and SQLite runs them over generated events.

    sigma_differential.py --rules DIR [--rules DIR]... --sample N --work DIR
    sigma_differential.py --check-deps

Picks a deterministic sample of N detection rules (every k-th rule, in path order, among the rules
pySigma can convert to SQL without a processing pipeline: no keyword searches, no numeric
comparisons, no placeholders, no field references, no regular expressions), copies them to
WORK/rules/, generates events from the rules' own values (per selection, all selections
together, and a case-changed variant) into WORK/events.jsonl (flat JSON objects, string values),
loads the events into an SQLite table whose text columns compare case-insensitively (as Sigma
does, and as Zircolite builds its table), runs every rule's SQL and writes the matches,
[[rule_id, event_index], ...], to WORK/expected.json.
"""

import argparse
import json
import os
import shutil
import sqlite3
import sys


def check_deps():
    try:
        import sigma  # noqa: F401
        from sigma.backends.sqlite import sqliteBackend  # noqa: F401
    except ImportError as e:
        print(f"missing Python package: {e} (pip install pysigma pysigma-backend-sqlite)")
        return 1
    print("ok")
    return 0


def rule_files(dirs):
    out = []
    for d in dirs:
        for root, _, files in os.walk(d):
            for f in files:
                if f.endswith((".yml", ".yaml")):
                    out.append(os.path.join(root, f))
    return sorted(out)


EXCLUDED_MODIFIERS = {
    "gt", "gte", "lt", "lte", "expand", "fieldref", "re", "cidr", "exists", "base64",
    "base64offset", "utf16le", "utf16be", "utf16", "wide", "i", "m", "s", "minute", "hour",
    "day", "week", "month", "year", "neq",
}


def raw_items(detection):
    """(field, modifiers, values) of every raw detection item (from the YAML, before pySigma)."""
    if isinstance(detection, dict):
        for key, value in detection.items():
            parts = str(key).split("|")
            yield parts[0], parts[1:], value if isinstance(value, list) else [value]
    elif isinstance(detection, list):
        for d in detection:
            if isinstance(d, dict):
                yield from raw_items(d)
            else:
                yield None, [], [d]  # keyword
    else:
        yield None, [], [detection]


def usable(raw):
    """Whether a raw rule (a YAML mapping) is in the scope of the comparison."""
    if not isinstance(raw, dict) or "correlation" in raw or "filter" in raw:
        return False
    det = raw.get("detection")
    if not isinstance(det, dict):
        return False
    for name, d in det.items():
        if name == "condition":
            continue
        if name == "timeframe":
            return False
        for field, mods, values in raw_items(d):
            if field is None:
                return False
            if any(m in EXCLUDED_MODIFIERS for m in mods):
                return False
            for v in values:
                if v is None or isinstance(v, (dict, list, bool, float)):
                    return False
                if isinstance(v, str) and ("%" in v or not v.isascii()):
                    return False
    return True


def synth(value):
    """A string a Sigma value (after its modifiers) matches."""
    from sigma.types import SigmaString, SpecialChars

    if isinstance(value, SigmaString):
        out = []
        for part in value.s:
            if part == SpecialChars.WILDCARD_MULTI:
                out.append("Qz")
            elif part == SpecialChars.WILDCARD_SINGLE:
                out.append("q")
            elif isinstance(part, str):
                out.append(part)
        return "".join(out)
    return str(value)


def selection_fields(detection):
    """Field values that satisfy one named detection (first alternative of each OR list, every
    value of an AND-linked list joined into one string)."""
    from sigma.conditions import ConditionAND
    from sigma.rule import SigmaDetection, SigmaDetectionItem

    fields = {}
    items = detection.detection_items
    # A list of alternatives (OR of sub-detections): take the first.
    if items and all(isinstance(i, SigmaDetection) for i in items):
        return selection_fields(items[0])
    for item in items:
        if isinstance(item, SigmaDetection):
            fields.update(selection_fields(item))
        elif isinstance(item, SigmaDetectionItem) and item.field and item.value:
            if item.value_linking is ConditionAND:
                fields[item.field] = " ".join(synth(v) for v in item.value)
            else:
                fields[item.field] = synth(item.value[0])
    return fields


def rule_fields(detection, out):
    """Every field a detection refers to."""
    from sigma.rule import SigmaDetection, SigmaDetectionItem

    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            rule_fields(item, out)
        elif isinstance(item, SigmaDetectionItem) and item.field:
            out.add(item.field)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rules", action="append", default=[])
    ap.add_argument("--sample", type=int, default=150)
    ap.add_argument("--work")
    ap.add_argument("--check-deps", action="store_true")
    args = ap.parse_args()
    if args.check_deps:
        return check_deps()
    if not args.rules or not args.work:
        ap.error("--rules and --work are required")

    import yaml
    from sigma.backends.sqlite import sqliteBackend
    from sigma.collection import SigmaCollection

    candidates = []
    for path in rule_files(args.rules):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError:
            continue
        if len(docs) != 1 or not usable(docs[0]) or not docs[0].get("id"):
            continue
        candidates.append((path, text))
    if not candidates:
        print("no usable rules", file=sys.stderr)
        return 1
    step = max(1, len(candidates) // args.sample)
    sample = candidates[::step][: args.sample]

    backend = sqliteBackend()
    rules_dir = os.path.join(args.work, "rules")
    shutil.rmtree(rules_dir, ignore_errors=True)
    os.makedirs(rules_dir)
    chosen = []  # (rule_id, [sql], rule)
    for path, text in sample:
        try:
            coll = SigmaCollection.from_yaml(text)
            rule = coll.rules[0]
            queries = backend.convert_rule(rule)
        except Exception as e:  # noqa: BLE001 - any pySigma refusal leaves the rule out
            print(f"skipped {path}: {e}", file=sys.stderr)
            continue
        if not queries or any(not isinstance(q, str) for q in queries):
            continue
        shutil.copy(path, os.path.join(rules_dir, f"{len(chosen):04d}-{os.path.basename(path)}"))
        chosen.append((str(rule.id), queries, rule))

    # Events from the rules' own values.
    events = []
    for _, _, rule in chosen:
        names = list(rule.detection.detections.items())
        combined = {}
        for _, det in names:
            fields = selection_fields(det)
            if fields:
                events.append(fields)
                combined.update(fields)
        if combined:
            events.append(combined)
            changed = {k: (v.upper() if i % 2 == 0 else v.lower()) for i, (k, v) in enumerate(combined.items())}
            events.append(changed)
    referenced = set()
    for _, _, rule in chosen:
        for det in rule.detection.detections.values():
            rule_fields(det, referenced)
    columns = sorted({k for e in events for k in e} | referenced, key=str.lower)
    # SQLite column names are case-insensitive: fields differing only in case share a column.
    seen = {}
    for c in columns:
        seen.setdefault(c.lower(), c)
    columns = list(seen.values())
    with open(os.path.join(args.work, "events.jsonl"), "w", encoding="utf-8") as f:
        for e in events:
            f.write(json.dumps(e) + "\n")

    db = sqlite3.connect(":memory:")
    cols = ", ".join(f'"{c}" TEXT COLLATE NOCASE' for c in columns)
    db.execute(f"CREATE TABLE logs (row_id INTEGER PRIMARY KEY, {cols})")
    for i, e in enumerate(events):
        lower = {k.lower(): v for k, v in e.items()}
        values = [lower.get(c.lower()) for c in columns]
        marks = ", ".join("?" for _ in range(len(columns) + 1))
        db.execute(f"INSERT INTO logs VALUES ({marks})", [i, *values])
    matches = []
    for rule_id, queries, _ in chosen:
        rows = set()
        for q in queries:
            try:
                cursor = db.execute(q.replace("SELECT *", "SELECT row_id", 1))
            except sqlite3.Error as e:
                print(f"SQL failed for {rule_id}: {e}: {q}", file=sys.stderr)
                return 1
            rows.update(r[0] for r in cursor)
        matches.extend([rule_id, r] for r in sorted(rows))
    with open(os.path.join(args.work, "expected.json"), "w", encoding="utf-8") as f:
        json.dump({"rules": len(chosen), "events": len(events), "matches": matches}, f)
    print(f"{len(chosen)} rules, {len(events)} events, {len(matches)} matches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
