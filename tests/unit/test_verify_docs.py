"""docs/verify.md documents the JSON document: its example is a document every format renders, in the key order
the reports keep, and its key table explains every key of the example."""

from __future__ import annotations

import json
import re
from pathlib import Path

from migrator.report import FORMATS, render
from migrator.report.document import KEY_ORDER, KINDS

DOC = Path(__file__).resolve().parents[2] / "docs" / "verify.md"


def documented_example() -> dict:
    """Returns the JSON example of docs/verify.md."""
    block = re.search(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert block is not None
    return json.loads(block.group(1))


def key_paths(doc: dict) -> set[str]:
    """Returns the documented paths of a document's keys: `tables[].rows_legacy`, `mismatches[].explain`..."""
    paths = set(doc)
    for name in ("tables", "mismatches"):
        for entry in doc.get(name) or ():
            paths |= {f"{name}[].{k}" for k in entry}
    return paths


def _documented_keys() -> set[str]:
    """Returns the keys named in the first column of the key table (`a`, `.b` after `x[].a` share its prefix)."""
    found: set[str] = set()
    for line in DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| (`[^|]+`) \|", line)
        if not m:
            continue
        names = re.findall(r"`([^`]+)`", m.group(1))
        prefix = ""
        for name in names:
            if name.startswith(".") and prefix:
                found.add(prefix + name[1:])
            else:
                found.add(name.removesuffix("[]"))  # `tables[]`: the list itself
                prefix = name.rsplit(".", 1)[0] + "." if "[]." in name else ""
    return found


def test_the_example_is_in_the_documented_order_with_every_kind():
    example = documented_example()
    assert list(example) == list(KEY_ORDER)
    assert list(example["counts"]) == list(KINDS) and list(example["tables"][0]["counts"]) == list(KINDS)
    assert example["mismatches"][0]["kind"] in KINDS
    for fmt in FORMATS[1:]:
        assert render(example, fmt)
    assert json.loads(render(example, "json")) == example


def test_every_key_of_the_example_is_explained():
    assert key_paths(documented_example()) <= _documented_keys()
