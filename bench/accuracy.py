"""Print how often bouncewise agrees with labelled bounces, per field, and the confusion pairs.

Usage: python bench/accuracy.py [FOLDER] [--labels labels.json] [--show-misses]

FOLDER holds one message per file and a `labels.json` beside it (or named with --labels) that
maps each file name to the expected rows, as in the shared corpus. A label status of the form
4.0.9NN or 5.0.9NN is a placeholder for "no explicit status", so only its class digit is compared.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

from bouncewise import classify
from bouncewise.classify import UnreadableInput

FIELDS = ("reason", "recipient", "status", "reply_code", "hard_bounce")
PLACEHOLDER_STATUS = re.compile(r"^[245]\.0\.9\d\d$")


def status_agrees(expected: str, actual: str) -> bool:
    """Compare status codes, reading a placeholder label as its class digit only."""
    if PLACEHOLDER_STATUS.match(expected):
        return actual[:1] == expected[:1]
    return expected == actual


def compare_row(expected: dict, actual) -> dict[str, bool]:
    """Return per-field agreement of one labelled row and one result (None if missing)."""
    if actual is None:
        return {name: False for name in FIELDS}
    wanted_recipient = expected.get("recipient")
    return {
        "reason": expected["reason"] == actual.reason,
        # A label without a recipient accepts any value.
        "recipient": wanted_recipient is None or wanted_recipient.lower() == actual.recipient.lower(),
        "status": status_agrees(expected.get("status", ""), actual.status),
        "reply_code": expected.get("replycode", "") == actual.reply_code,
        "hard_bounce": bool(expected.get("hardbounce")) == actual.hard_bounce,
    }


def pair_rows(expected_rows: list[dict], results: list) -> list[tuple[dict, object]]:
    """Pair labelled rows with results by recipient, then the rest in order."""
    remaining = list(results)
    pairs = []
    for expected in expected_rows:
        match = next((result for result in remaining
                      if expected.get("recipient", "").lower() == result.recipient.lower()), None)
        if match is None and remaining:
            match = remaining[0]
        if match is not None:
            remaining.remove(match)
        pairs.append((expected, match))
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus" / "bounces"
    parser.add_argument("folder", nargs="?", default=str(default))
    parser.add_argument("--labels", help="labels file (default: labels.json beside the folder)")
    parser.add_argument("--show-misses", action="store_true", help="print every disagreeing row")
    parser.add_argument("--match", default="", help="read only files whose name contains this text")
    options = parser.parse_args()

    folder = Path(options.folder)
    labels_path = Path(options.labels) if options.labels else folder.parent / "labels.json"
    if not folder.is_dir() or not labels_path.is_file():
        print(f"error: {folder} or {labels_path} not found", file=sys.stderr)
        return 2
    labels = json.loads(labels_path.read_text())

    agree = Counter()
    rows = 0
    confusion = Counter()
    misses = []
    for name in sorted(os.listdir(folder)):
        if name not in labels or options.match not in name:
            continue
        try:
            results = classify(folder / name, source=name)
        except UnreadableInput:
            results = []
        for expected, actual in pair_rows(labels[name], results):
            rows += 1
            verdict = compare_row(expected, actual)
            agree.update(field for field, ok in verdict.items() if ok)
            if not verdict["reason"]:
                confusion[(expected["reason"], actual.reason if actual else "(no row)")] += 1
            if not all(verdict.values()):
                misses.append((name, expected, actual, verdict))

    if not rows:
        print("no labelled rows matched", file=sys.stderr)
        return 2
    print(f"rows: {rows} in {len(labels)} labelled files")
    for field in FIELDS:
        print(f"{field:12} {agree[field] / rows:.4f}  ({agree[field]}/{rows})")
    print("\nreason confusion (expected -> got):")
    for (expected, got), count in confusion.most_common():
        print(f"  {count:3}  {expected} -> {got}")
    if options.show_misses:
        print("\nmisses:")
        for name, expected, actual, verdict in misses:
            wrong = [field for field, ok in verdict.items() if not ok]
            got = {field: getattr(actual, field, None) for field in FIELDS} if actual else None
            print(f"  {name}: {','.join(wrong)}\n    expected {expected}\n    got      {got}")
            if actual:
                print(f"    by {actual.decoded_by}: {actual.diagnostic[:300]!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
