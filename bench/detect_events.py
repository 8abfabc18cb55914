#!/usr/bin/env python3
"""Helpers of bench/detect.sh (the Sigma detection benchmark).

    detect_events.py generate --corpus DIR --count N --out FILE.jsonl [--seed S]
        N Windows events in the evtx_dump JSON shape, one a line: the real events of the SigmaHQ
        regression corpus as templates, 5% copied as they are (they match their rules), 95%
        with every EventData text field replaced by a plausible benign value (a different
        program, path, command line or registry key), so most events match nothing, as on a
        real host.

    detect_events.py reference --rules DIR [--rules DIR]... --events FILE.jsonl --cache DIR
        The reference engine, Zircolite's method: every rule converted once by pySigma
        (pySigma-backend-sqlite with the Sysmon and Windows pipelines; the SQL is cached in
        DIR), the events flattened into an in-memory SQLite table, every rule's SQL run over
        it. Prints `RESULT reference: events=N rules=R seconds=S events_per_s=E matches=M`
        (load + queries; conversion excluded, as Zircolite ships converted rule sets).
"""

import argparse
import glob
import json
import os
import random
import sqlite3
import sys
import time


def templates(corpus):
    out = []
    for path in sorted(glob.glob(os.path.join(corpus, "**", "*.json"), recursive=True)):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        dec = json.JSONDecoder()
        i = 0
        while i < len(text):
            while i < len(text) and text[i].isspace():
                i += 1
            if i >= len(text):
                break
            v, i = dec.raw_decode(text, i)
            out.append(v)
    return out


PROGRAMS = ["chrome.exe", "explorer.exe", "svchost.exe", "teams.exe", "outlook.exe", "code.exe",
            "java.exe", "python.exe", "backup.exe", "agent.exe", "notepad.exe", "msedge.exe"]
DIRS = ["C:\\Program Files\\Vendor{n}", "C:\\Users\\user{n}\\AppData\\Local\\App{n}",
        "C:\\Program Files (x86)\\Tool{n}", "D:\\apps\\svc{n}"]


def benign(key, value, rnd):
    n = rnd.randrange(1000)
    prog = rnd.choice(PROGRAMS)
    d = rnd.choice(DIRS).format(n=n)
    k = key.lower()
    if "commandline" in k:
        return f'"{d}\\{prog}" --profile {n} --log-level info'
    if k.endswith("image") or "filename" in k or k in ("imageloaded", "targetfilename", "path"):
        return f"{d}\\{prog}"
    if k == "targetobject":
        return f"HKLM\\SOFTWARE\\Vendor{n}\\Settings\\Value{rnd.randrange(100)}"
    if k == "details":
        return f"DWORD (0x{n:08x})"
    if "hash" in k:
        return "SHA256=" + "".join(rnd.choice("0123456789ABCDEF") for _ in range(64))
    if k in ("user", "targetusername", "subjectusername"):
        return f"CORP\\user{n}"
    if k in ("description", "product", "company", "originalfilename", "filedescription"):
        return f"Vendor {n} {prog}"
    return f"value-{n}"


def generate(args):
    rnd = random.Random(args.seed)
    base = templates(args.corpus)
    if not base:
        sys.exit(f"no events under {args.corpus}")
    with open(args.out, "w", encoding="utf-8") as f:
        for _ in range(args.count):
            e = rnd.choice(base)
            if rnd.random() >= 0.05:
                e = json.loads(json.dumps(e))
                data = e.get("Event", {}).get("EventData")
                if isinstance(data, dict):
                    for key, value in data.items():
                        if isinstance(value, str) and not key.startswith("#"):
                            data[key] = benign(key, value, rnd)
            f.write(json.dumps(e, separators=(",", ":")) + "\n")


def flatten(e):
    """The evtx_dump shape to flat columns (System fields, Provider_Name, EventData fields)."""
    ev = e.get("Event", {})
    out = {}
    for k, v in (ev.get("System") or {}).items():
        if isinstance(v, dict):
            attrs = v.get("#attributes") or {}
            if k == "Provider":
                for a, x in attrs.items():
                    out[f"Provider_{a}"] = x
            elif k == "TimeCreated":
                out["TimeCreated"] = attrs.get("SystemTime")
            elif "#text" in v:
                out[k] = v["#text"]
            else:
                out.update(attrs)
        elif v is not None:
            out[k] = v
    for k, v in (ev.get("EventData") or {}).items():
        if not k.startswith("#"):
            out[k] = v.get("#text") if isinstance(v, dict) else v
    return out


def convert(rule_dirs, cache):
    os.makedirs(cache, exist_ok=True)
    path = os.path.join(cache, "reference-sql.json")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    from sigma.backends.sqlite import sqliteBackend
    from sigma.collection import SigmaCollection
    from sigma.pipelines.sysmon import sysmon_pipeline
    from sigma.pipelines.windows import windows_logsource_pipeline

    pipeline = sysmon_pipeline() + windows_logsource_pipeline()
    backend = sqliteBackend(processing_pipeline=pipeline)
    queries = []
    for d in rule_dirs:
        for p in sorted(glob.glob(os.path.join(d, "**", "*.yml"), recursive=True)):
            try:
                with open(p, encoding="utf-8") as f:
                    coll = SigmaCollection.from_yaml(f.read())
                for rule in coll.rules:
                    for q in backend.convert_rule(rule):
                        if isinstance(q, str):
                            queries.append([str(rule.id), q])
            except Exception:  # noqa: BLE001 - rules pySigma refuses are left out
                continue
    with open(path, "w", encoding="utf-8") as f:
        json.dump(queries, f)
    return queries


def reference(args):
    queries = convert(args.rules, args.cache)
    with open(args.events, encoding="utf-8") as f:
        lines = f.readlines()
    start = time.perf_counter()
    rows = [flatten(json.loads(l)) for l in lines if l.strip()]
    columns = {}
    for r in rows:
        for k in r:
            columns.setdefault(k.lower(), k)
    db = sqlite3.connect(":memory:")
    cols = list(columns.values())
    db.execute("CREATE TABLE logs (" + ", ".join(f'"{c}" TEXT COLLATE NOCASE' for c in cols) + ")")
    marks = ", ".join("?" for _ in cols)
    db.executemany(
        f"INSERT INTO logs VALUES ({marks})",
        ([None if r.get(c) is None else str(r.get(c)) for c in cols] for r in rows),
    )
    matches = 0
    ran = 0
    for _, q in queries:
        try:
            matches += sum(1 for _ in db.execute(q))
            ran += 1
        except sqlite3.Error:
            continue  # a column no event has: the rule cannot match
    secs = time.perf_counter() - start
    print(f"RESULT reference: events={len(rows)} rules={ran} seconds={secs:.3f} "
          f"events_per_s={len(rows) / secs:.0f} matches={matches}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--corpus", required=True)
    g.add_argument("--count", type=int, required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--seed", type=int, default=1642)
    r = sub.add_parser("reference")
    r.add_argument("--rules", action="append", required=True)
    r.add_argument("--events", required=True)
    r.add_argument("--cache", required=True)
    args = ap.parse_args()
    generate(args) if args.cmd == "generate" else reference(args)


if __name__ == "__main__":
    main()
