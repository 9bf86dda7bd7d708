"""Reflected MySQL/MariaDB column types get the coercers that make their values what the other backends give."""

from __future__ import annotations

import pytest
from sqlalchemy.dialects import mysql

from migrator.mapping.normalizers import NORMALIZERS, coercer_for_type, timestamp


@pytest.mark.parametrize("sqltype, coercer", [
    (mysql.TINYINT(display_width=1), "bool"),  # MySQL's BOOLEAN, as reflected
    (mysql.TINYINT(display_width=4), "int"),
    (mysql.TINYINT(), "int"),
    (mysql.BIGINT(unsigned=True), "int"),
    (mysql.DATETIME(fsp=6), "timestamp"),
    (mysql.DATETIME(), "timestamp"),
    (mysql.TIMESTAMP(), "timestamp"),
    (mysql.CHAR(36), "text"),
    (mysql.VARCHAR(20), "text"),
    (mysql.DECIMAL(10, 2), "decimal:2"),
])
def test_mysql_types_reflect_to_their_coercers(sqltype, coercer):
    assert coercer_for_type(sqltype) == coercer


def test_tinyint_booleans_read_0_and_1_as_the_other_backends_booleans():
    coerce = NORMALIZERS["bool"]
    assert (coerce(1), coerce(0), coerce(None)) == (True, False, None)


def test_a_zero_date_is_refused_with_a_reason_that_names_it():
    with pytest.raises(ValueError, match=r"zero date '0000-00-00 00:00:00'.*NO_ZERO_DATE"):
        timestamp()("0000-00-00 00:00:00")
    assert timestamp()("2020-01-02 03:04:05") == "2020-01-02T03:04:05.000000+00:00"  # DATETIME text, naive: UTC
