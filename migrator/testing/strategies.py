"""A hypothesis strategy for comparison scenarios: operation sequences generated from a `TableMapping`.

`operations(mapping)` draws creates of absent keys, updates of some columns and deletes of live keys
from a small key pool (so deleted keys are created again). Column values follow the column's mapping:
booleans for a boolean column, emails in mixed case for an `email` column, text with unicode letters
and surrounding blanks for a trimmed column, blanks and nulls for a `blank_to_none` column. A unique
field's values carry their key, so two keys never share one. `columns` replaces or adds a column's
strategy (an unmapped NOT NULL column needs one). Hypothesis shrinks a failure to the shortest sequence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

from ..mapping import ColumnMap, TableMapping
from .operations import CREATE, DELETE, UPDATE, Operation

LETTERS = st.characters(categories=("L", "N"))  # unicode letters and digits
BLANKS = st.text(alphabet=" \t\u00a0", max_size=2)


def padded_text(min_size: int = 1, max_size: int = 12) -> st.SearchStrategy[str]:
    """Returns text of unicode letters, digits and inner spaces, with surrounding blanks, non-blank."""
    core = st.text(alphabet=st.one_of(LETTERS, st.sampled_from(" -.'")), min_size=min_size, max_size=max_size)
    core = core.filter(lambda s: s.strip() != "")
    return st.tuples(BLANKS, core, BLANKS).map("".join)


def mixed_case_emails() -> st.SearchStrategy[str]:
    """Returns emails in lower, upper, title or swapped case, some with a leading blank."""
    local = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789._", min_size=1, max_size=8)
    domain = st.sampled_from(["example.org", "Example.COM", "münchen.de"])
    case = st.sampled_from([str.lower, str.upper, str.title, str.swapcase])
    return st.builds(lambda pad, name, host, cased: pad + cased(f"{name}@{host}"),
                     st.sampled_from(["", " "]), local, domain, case)


def column_values(column: ColumnMap) -> st.SearchStrategy[Any]:
    """Returns the default values of a mapped column, chosen by its events and normalizers."""
    names = {n for n in column.normalize if isinstance(n, str)}
    if column.true_event or "bool" in names:
        return st.booleans()
    if "email" in names:
        return mixed_case_emails()
    if "blank_to_none" in names:
        return st.one_of(st.none(), BLANKS, padded_text())
    return padded_text()


def operations(mapping: TableMapping, *, keys: Sequence[Any] = (1, 2, 3),
               columns: Mapping[str, st.SearchStrategy[Any]] | None = None,
               max_size: int = 8) -> st.SearchStrategy[list[Operation]]:
    """Returns a strategy of operation sequences (creates, updates, deletes, recreates) of `keys`."""
    values = {c.column: column_values(c) for c in mapping.columns} | dict(columns or {})
    unique = {c.column for c in mapping.columns if c.field in mapping.unique}
    names = sorted(values)

    def keyed(key: Any, column: str, value: Any) -> Any:
        if column not in unique or not isinstance(value, str):
            return value
        rest = value.lstrip()
        return f"{value[:len(value) - len(rest)]}{key}.{rest}"

    @st.composite
    def sequences(draw: st.DrawFn) -> list[Operation]:
        live: set[Any] = set()
        out: list[Operation] = []
        for _ in range(draw(st.integers(0, max_size))):
            key = draw(st.sampled_from(list(keys)))
            kind = draw(st.sampled_from([UPDATE, UPDATE, DELETE])) if key in live else CREATE
            if kind == DELETE:
                live.discard(key)
                out.append(Operation(DELETE, key))
                continue
            chosen = names if kind == CREATE else draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
            out.append(Operation(kind, key, {c: keyed(key, c, draw(values[c])) for c in chosen}))
            live.add(key)
        return out

    return sequences()
