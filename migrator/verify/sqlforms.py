"""The SQL a checksum runs in each database: a canonical text per row, hashed the same way on every backend.

A row's *canonical text* is its compared values in a fixed field order, each written as `<length>:<text>`
(`~` for NULL) and joined by `|`, where a boolean is `1`/`0` and an integer its decimal digits: the
same values give the same text on any backend, and no two value lists give the same text. Its md5
(hex) is the row's digest; a bucket's checksum is its row count and the sum of the digests' first
64 bits as signed integers (a sum that cannot overflow: PostgreSQL's sum of bigint is numeric,
SQLite's is summed by a Python aggregate). Between two PostgreSQL databases the digest is
`hashtextextended` of the canonical text instead (64 bits, computed the same in both, much cheaper).
A key's bucket comes from its integer value (integer keys) or from the md5 of the key's text.

PostgreSQL computes everything in SQL; the legacy side applies each field's normalizers through
their SQL form (`email` is `lower(btrim(x, <whitespace>))`, ...). A normalizer without one (a Python
function, `timestamp`, ...) leaves its field out of the checksum: that field is compared by streaming
(`Forms.field_sql` returns None). Every SQL form is exact — it gives the text the Python normalizer
gives — or, where the database could disagree with Python (`lower` of non-ASCII text), it makes the
row's checksum differ, so that a checksum difference may be spurious (the rows are then compared in
Python) but checksum equality never is. SQLite runs in this process: the values its SQL forms cannot
take exactly (text that is not printable ASCII, ...) are canonicalized by deterministic Python functions
registered on the connection (`create_function`) with the mapping's own coercers and normalizers, and
the digest is a registered function too, so no field is ever streamed there.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection

from ..mapping import NORMALIZERS

# What Python's str.strip() removes, and what strip_control() removes (U+0000 and lone surrogates
# cannot be in PostgreSQL text at all).
WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
CONTROLS = "".join(chr(c) for c in [*range(1, 9), 11, 12, *range(14, 32), 127])
NON_ASCII_MARK = "\x01\uffff"  # appended where PostgreSQL's lower() could disagree with Python's

_NAMES = {fn: name for name, fn in NORMALIZERS.items()}


def value_text(value: Any) -> str | None:
    """Returns a value's canonical text: None for NULL, `1`/`0` for booleans, digits for integers."""
    if value is None:
        return None
    if value is True:
        return "1"
    if value is False:
        return "0"
    return value if type(value) is str else str(value)


def canonical(values: Sequence[Any]) -> str:
    """Returns the canonical text of a row's compared values (see the module's docstring)."""
    parts = []
    for v in values:
        t = value_text(v)
        parts.append("~" if t is None else f"{len(t)}:{t}")
    return "|".join(parts)


def digest(values: Sequence[Any]) -> str:
    """Returns the md5 (hex) of the canonical text of a row's values."""
    return hashlib.md5(canonical(values).encode("utf-8", "surrogatepass")).hexdigest()


def key_hash(text: str) -> int:
    """Returns the 32-bit hash of a key's text that buckets it (the md5's first word)."""
    return int(hashlib.md5(text.encode("utf-8", "surrogatepass")).hexdigest()[:8], 16)


@dataclasses.dataclass(frozen=True)
class Source:
    """One compared field of one side: the column that holds it, how Python turns the column's value into
    the compared value, and, on the legacy side, the kind of value the column holds and its normalizers."""

    field: str
    column: str
    convert: Callable[[Any], Any]
    kind: str | None = "text"  # text | int | bool; None: a value no SQL form reads
    normalize: tuple[Any, ...] = ()


class Forms:
    """The checksum SQL of one backend."""

    def prepare(self, conn: Connection, sources: Sequence[Source], name: str) -> None:
        """Makes the connection ready to compute `row_hash(sources, name)` (SQLite registers functions)."""

    def field_sql(self, source: Source) -> str | None:
        """Returns the SQL of the field's canonical text (NULL for NULL), None when it has no SQL form."""
        raise NotImplementedError

    def row_hash(self, columns: Sequence[str], name: str) -> str:
        """Returns the SQL of the row's digest over `columns`, which a subquery selects as the `field_sql` of
        each source (so that each is computed once)."""
        raise NotImplementedError

    fence = ""  # ends a subquery whose columns must be computed once (not inlined into the outer query)

    def key_hash(self, key_text_sql: str) -> str:
        """Returns the SQL of `key_hash` of a key's text."""
        raise NotImplementedError

    def sums(self, hash_sql: str) -> str:
        """Returns the select list of a bucket's checksum: its row count and digest sum."""
        raise NotImplementedError

    def checksum(self, row: Sequence[Any]) -> tuple[int, int]:
        """Returns (count, digest sum) from the values of `sums`."""
        raise NotImplementedError

    def cast_text(self, sql: str) -> str:
        return f"CAST({sql} AS TEXT)"

    def int_div(self, sql: str, n: int) -> str:
        """Returns the SQL of the integer `sql` divided by `n`, truncated toward zero."""
        return f"({sql} / {int(n)})"

    def integer_of(self, text_sql: str) -> str:
        """Returns the SQL of the integer whose canonical text (`str(int)`) the text is, NULL when none is."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """Returns the bound parameters the SQL of this backend uses."""
        return {}


class PostgresForms(Forms):
    """PostgreSQL: md5() in SQL, normalizers through their SQL forms."""

    fence = " OFFSET 0"

    def field_sql(self, source: Source) -> str | None:
        expr, kind, trimmed = source.column, source.kind, False
        if kind is None:
            return None
        for spec in source.normalize:
            name = spec if isinstance(spec, str) else _NAMES.get(spec)
            step = _pg_step(name, expr, kind, source.column, trimmed)
            if step is None:
                return None
            expr, kind, trimmed = step
        if kind == "bool":
            return f"(CASE WHEN {expr} THEN '1' WHEN NOT {expr} THEN '0' END)"
        return expr if kind == "text" else self.cast_text(expr)

    def row_hash(self, columns: Sequence[str], name: str) -> str:
        return f"md5({self.canonical_sql(columns)})"

    def canonical_sql(self, columns: Sequence[str]) -> str:
        """Returns the SQL of the canonical text of `columns` (each the canonical text of a value, or NULL)."""
        pieces = [f"(CASE WHEN {c} IS NULL THEN '~' ELSE CAST(length({c}) AS TEXT) || ':' || {c} END)"
                  for c in columns]
        return " || '|' || ".join(pieces or ["''"])

    def key_hash(self, key_text_sql: str) -> str:
        return f"(('x' || substr(md5({key_text_sql}), 1, 8))::bit(32)::bigint)"

    def integer_of(self, text_sql: str) -> str:
        return f"(CASE WHEN {text_sql} ~ '^(0|-?[1-9][0-9]{{0,17}})$' THEN CAST({text_sql} AS BIGINT) END)"

    def sums(self, hash_sql: str) -> str:
        return f"count(*), sum(('x' || substr({hash_sql}, 1, 16))::bit(64)::bigint)"

    def checksum(self, row: Sequence[Any]) -> tuple[int, int]:
        return int(row[0]), int(row[1] or 0)

    def params(self) -> dict[str, Any]:
        return {"verify_ws": WHITESPACE, "verify_ctl": CONTROLS, "verify_mark": NON_ASCII_MARK}


class PostgresPairForms(PostgresForms):
    """PostgreSQL when the other side is PostgreSQL too: the row digest is `hashtextextended` of the canonical
    text (64 bits, several times cheaper than md5 and its hex parsing), the same in both databases."""

    def row_hash(self, columns: Sequence[str], name: str) -> str:
        return f"hashtextextended({self.canonical_sql(columns)}, 0)"

    def sums(self, hash_sql: str) -> str:
        return f"count(*), sum({hash_sql})"


_PG_CONTROL = "'[\\x01-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]'"
_PG_ASCII = "'^[\\x01-\\x7f]*$'"


def _pg_step(name: str | None, x: str, kind: str, column: str, trimmed: bool) -> tuple[str, str, bool] | None:
    """Returns (SQL, kind, trimmed) of one normalizer applied to `x` of `kind`, None when it has no exact form.

    `column` is the source column (`x` derives from it: when it is ASCII, so is `x`); `trimmed` says that
    `x` has no whitespace at either end. Each branch of a CASE computes `x` at most once."""
    if name in ("trim", "lower", "email", "strip_control", "blank_to_none") and kind != "text":
        return x, kind, trimmed  # these leave values that are not text alone
    if name == "trim":
        return f"btrim({x}, :verify_ws)", kind, True
    if name == "strip_control":  # translate() is slow: only rows holding a control character need it
        # (removing one may leave whitespace at an end: no longer trimmed)
        if x == column:
            return f"(CASE WHEN {x} ~ {_PG_CONTROL} THEN translate({x}, :verify_ctl, '') ELSE {x} END)", kind, False
        return f"translate({x}, :verify_ctl, '')", kind, False
    if name in ("lower", "email"):
        inner = f"btrim({x}, :verify_ws)" if name == "email" else x
        # lower() of non-ASCII text follows the database's collation, not Python: such rows never match
        return (f"(CASE WHEN {column} ~ {_PG_ASCII} THEN lower({inner}) ELSE {inner} || :verify_mark END)", kind,
                trimmed or name == "email")
    if name == "blank_to_none":
        if trimmed:
            return f"NULLIF({x}, '')", kind, True
        return f"(CASE WHEN btrim({x}, :verify_ws) = '' THEN NULL ELSE {x} END)", kind, False
    if name == "text":
        if kind == "bool":
            return f"(CASE WHEN {x} THEN 'True' WHEN NOT {x} THEN 'False' END)", "text", True
        return (x if kind == "text" else f"CAST({x} AS TEXT)"), "text", trimmed or kind == "int"
    if name == "int" and kind in ("int", "bool"):
        return (x if kind == "int" else f"(CASE WHEN {x} THEN 1 WHEN NOT {x} THEN 0 END)"), "int", trimmed
    if name == "bool" and kind in ("int", "bool"):
        return (x if kind == "bool" else f"({x} <> 0)"), "bool", trimmed
    return None


class SqliteForms(Forms):
    """SQLite: printable ASCII text and 0/1 booleans are normalized in SQL (exactly: on such text every
    normalizer's SQL form is Python's); any other value by a Python function registered on the connection,
    which applies the mapping's own coercers and normalizers. The digest is computed by a registered
    function too (SQLite has no md5), over the canonical texts."""

    def prepare(self, conn: Connection, sources: Sequence[Source], name: str) -> None:
        raw: Any = conn.connection.driver_connection

        def row_digest(*texts: Any) -> str:
            return digest(texts)

        raw.create_function(name, len(sources), row_digest, deterministic=True)
        for source in sources:
            raw.create_function(_python_form(source), 1, _canonical_of(source.convert), deterministic=True)
        raw.create_function("verify_key_hash", 1, _key_hash_or_none, deterministic=True)
        raw.create_aggregate("verify_sums", 1, _Sums)

    def field_sql(self, source: Source) -> str | None:
        x = source.column
        python = f"{_python_form(source)}({x})"
        steps = [spec if isinstance(spec, str) else _NAMES.get(spec) for spec in source.normalize]
        if source.kind == "text" and set(steps) <= {"strip_control", "trim", "lower", "email", "blank_to_none", "text"}:
            expr, trimmed = x, False
            for step in steps:  # on printable ASCII: strip_control and text change nothing, whitespace is ' '
                if step == "trim":
                    expr, trimmed = f"trim({expr})", True
                elif step == "lower":
                    expr = f"lower({expr})"
                elif step == "email":
                    expr, trimmed = f"lower(trim({expr}))", True
                elif step == "blank_to_none":
                    expr = (f"NULLIF({expr}, '')" if trimmed
                            else f"(CASE WHEN trim({expr}) = '' THEN NULL ELSE {expr} END)")
            return (f"(CASE WHEN {x} IS NULL THEN NULL WHEN typeof({x}) = 'text' AND {x} NOT GLOB '*[^ -~]*' "
                    f"THEN {expr} ELSE {python} END)")
        if source.kind == "bool" and set(steps) <= {"bool"}:
            return (f"(CASE WHEN {x} IS NULL THEN NULL WHEN typeof({x}) = 'integer' AND {x} IN (0, 1) "
                    f"THEN (CASE {x} WHEN 1 THEN '1' ELSE '0' END) ELSE {python} END)")
        return python

    def row_hash(self, columns: Sequence[str], name: str) -> str:
        return f"{name}({', '.join(columns)})" if columns else "'d41d8cd98f00b204e9800998ecf8427e'"

    def key_hash(self, key_text_sql: str) -> str:
        return f"verify_key_hash({key_text_sql})"

    def integer_of(self, text_sql: str) -> str:
        return (f"(CASE WHEN CAST(CAST({text_sql} AS INTEGER) AS TEXT) = {text_sql} "
                f"THEN CAST({text_sql} AS INTEGER) END)")

    def sums(self, hash_sql: str) -> str:
        return f"count(*), verify_sums({hash_sql})"

    def checksum(self, row: Sequence[Any]) -> tuple[int, int]:
        return int(row[0]), int(row[1] or 0)


def _python_form(source: Source) -> str:
    """Returns the name of the registered function giving a source's canonical text in Python."""
    return "verify_py_" + "".join(c if c.isalnum() else "_" for c in source.column)


def _canonical_of(convert: Callable[[Any], Any]) -> Callable[[Any], str | None]:
    def canonical_text(value: Any) -> str | None:
        try:
            return value_text(convert(value))
        except (ValueError, TypeError, ArithmeticError):  # a value the mapping cannot read: never equal
            return "\x00" + repr(value)
    return canonical_text


def _key_hash_or_none(text: Any) -> int | None:
    return None if text is None else key_hash(str(text))


def digest_word(h: str) -> int:
    """Returns the digest's first 64 bits as a signed integer (what PostgreSQL's `::bit(64)::bigint` gives)."""
    n = int(h[:16], 16)
    return n - (1 << 64) if n >= 1 << 63 else n


class _Sums:
    """SQLite aggregate: the sum of the digests' first 64-bit words, as text (no 64-bit overflow)."""

    def __init__(self) -> None:
        self.total = 0

    def step(self, h: str | None) -> None:
        if h is not None:
            self.total += digest_word(h)

    def finalize(self) -> str:
        return str(self.total)


def _class_of(chars: str) -> str:
    """Returns a regular-expression character class of `chars`, each as `\\x{hex}` (PCRE and ICU alike)."""
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in chars) + "]"


# MySQL/MariaDB regular expressions, bound as parameters; `(?-i)`: case-sensitive whatever the column's collation
# (a case-insensitive class [\x01-\x7f] would match the Kelvin sign, which folds to k); \A and \z, not ^ and $
# (which also matches before a final newline)
_MY_WS_ENDS = f"\\A{_class_of(WHITESPACE)}+|{_class_of(WHITESPACE)}+\\z"
_MY_CONTROL = "[\\x{0}-\\x{8}\\x{b}\\x{c}\\x{e}-\\x{1f}\\x{7f}]"
_MY_ASCII = "(?-i)\\A[\\x{1}-\\x{7f}]*\\z"


class MySQLForms(Forms):
    """MySQL / MariaDB: MD5() in SQL over the canonical text in utf8mb4, normalizers through SQL forms.

    Its TRIM() removes spaces only and its LOWER() follows the column's collation, so printable ASCII
    text takes TRIM()/LOWER() (exact there) and other text a regular expression of Python's whitespace
    (exact) or, for LOWER(), the NON_ASCII_MARK (never equal: compared in Python). No comparison here
    depends on the collation (PAD SPACE would make 'a ' = 'a'): emptiness is CHAR_LENGTH() = 0.
    CHAR_LENGTH() counts code points, as Python's len(), also for 4-byte characters (utf8mb4).
    """

    fence = " LIMIT 18446744073709551615"  # a derived table with a LIMIT is not merged into the outer query

    def cast_text(self, sql: str) -> str:
        return f"CAST({sql} AS CHAR)"

    def int_div(self, sql: str, n: int) -> str:
        return f"({sql} DIV {int(n)})"

    def field_sql(self, source: Source) -> str | None:
        if source.kind is None:
            return None
        names = [spec if isinstance(spec, str) else _NAMES.get(spec) for spec in source.normalize]
        x = source.column
        if source.kind == "text" and names[:1] == ["strip_control"]:
            # the steps after it are written twice, on the column as it is (the rows without a control character:
            # each step refers to a plain column, cheap to read again) and on the column stripped (the others)
            plain, stripped = self._steps(names[1:], x, x), self._steps(names[1:], f"REGEXP_REPLACE({x}, "
                                                                        ":verify_my_ctl, '')", x)
            if plain is None or stripped is None:
                return None
            return f"(CASE WHEN {x} REGEXP :verify_my_ctl THEN {stripped} ELSE {plain} END)"
        return self._steps(names, x, x, source.kind)

    def _steps(self, names: Sequence[str | None], expr: str, column: str, kind: str = "text") -> str | None:
        trimmed = False
        for name in names:
            step = _my_step(name, expr, kind, column, trimmed)
            if step is None:
                return None
            expr, kind, trimmed = step
        if kind == "bool":
            return f"(CASE WHEN {expr} THEN '1' WHEN NOT {expr} THEN '0' END)"
        return expr if kind == "text" else self.cast_text(expr)

    def row_hash(self, columns: Sequence[str], name: str) -> str:
        pieces = [f"(CASE WHEN {c} IS NULL THEN '~' ELSE CONCAT(CHAR_LENGTH({c}), ':', {c}) END)" for c in columns]
        canonical = f"CONCAT_WS('|', {', '.join(pieces)})" if pieces else "''"
        return f"MD5(CONVERT({canonical} USING utf8mb4))"

    def key_hash(self, key_text_sql: str) -> str:
        return f"CAST(CONV(LEFT(MD5(CONVERT({key_text_sql} USING utf8mb4)), 8), 16, 10) AS UNSIGNED)"

    def integer_of(self, text_sql: str) -> str:
        return f"(CASE WHEN {text_sql} REGEXP '^(0|-?[1-9][0-9]{{0,17}})$' THEN CAST({text_sql} AS SIGNED) END)"

    def sums(self, hash_sql: str) -> str:
        # CONV to a negative base reads the 64 bits as a signed number; SUM of BIGINT is an exact DECIMAL
        return f"count(*), SUM(CAST(CONV(LEFT({hash_sql}, 16), 16, -10) AS SIGNED))"

    def checksum(self, row: Sequence[Any]) -> tuple[int, int]:
        return int(row[0]), int(row[1] or 0)

    def params(self) -> dict[str, Any]:
        return {"verify_my_ws": _MY_WS_ENDS, "verify_my_ctl": _MY_CONTROL, "verify_my_ascii": _MY_ASCII,
                "verify_mark": NON_ASCII_MARK}


# ORD() of each whitespace character in utf8mb4 (its UTF-8 bytes as a number): a text whose first and last
# characters are none of them is what Python's strip() leaves as it is
_MY_WS_ORDS = ", ".join(str(int.from_bytes(c.encode())) for c in WHITESPACE)


def _my_trim(x: str) -> str:
    ends = " OR ".join(f"ORD(CONVERT({side}({x}, 1) USING utf8mb4)) IN ({_MY_WS_ORDS})" for side in ("LEFT", "RIGHT"))
    return f"(CASE WHEN {ends} THEN REGEXP_REPLACE({x}, :verify_my_ws, '') ELSE {x} END)"


def _my_step(name: str | None, x: str, kind: str, column: str, trimmed: bool) -> tuple[str, str, bool] | None:
    """Returns (SQL, kind, trimmed) of one normalizer applied to `x` of `kind` on MySQL (see `_pg_step`)."""
    if name in ("trim", "lower", "email", "strip_control", "blank_to_none") and kind != "text":
        return x, kind, trimmed
    if name == "trim":
        return _my_trim(x), kind, True
    if name == "strip_control":
        return (f"(CASE WHEN {x} REGEXP :verify_my_ctl THEN REGEXP_REPLACE({x}, :verify_my_ctl, '') ELSE {x} END)",
                kind, False)
    if name in ("lower", "email"):
        inner = _my_trim(x) if name == "email" else x
        return (f"(CASE WHEN {column} REGEXP :verify_my_ascii THEN LOWER({inner}) "
                f"ELSE CONCAT({inner}, :verify_mark) END)", kind, trimmed or name == "email")
    if name == "blank_to_none":
        if trimmed:
            return f"(CASE WHEN CHAR_LENGTH({x}) = 0 THEN NULL ELSE {x} END)", kind, True
        return f"(CASE WHEN CHAR_LENGTH({_my_trim(x)}) = 0 THEN NULL ELSE {x} END)", kind, False
    if name == "text":
        if kind == "bool":
            return f"(CASE WHEN {x} THEN 'True' WHEN NOT {x} THEN 'False' END)", "text", True
        return (x if kind == "text" else f"CAST({x} AS CHAR)"), "text", trimmed or kind == "int"
    if name == "int" and kind in ("int", "bool"):
        return (x if kind == "int" else f"(CASE WHEN {x} THEN 1 WHEN NOT {x} THEN 0 END)"), "int", trimmed
    if name == "bool" and kind in ("int", "bool"):
        return (x if kind == "bool" else f"({x} <> 0)"), "bool", trimmed
    return None


def forms_for(backend: str, other: str | None = None) -> Forms:
    """Returns the checksum SQL of a backend (`engine.dialect.name`) comparing with a database of the `other`
    backend; ValueError for one without it."""
    if backend == "postgresql":
        return PostgresPairForms() if other == "postgresql" else PostgresForms()
    if backend == "sqlite":
        return SqliteForms()
    if backend == "mysql":
        return MySQLForms()
    raise ValueError(f"verify cannot compute checksums in a {backend} database")
