"""The two apps' validator modules (neither imports the other) judge every character alike."""

from __future__ import annotations

import subprocess
import sys

import es_app.domain.input_rules as es_rules
import legacy_app.input_rules as legacy_rules

# every BMP code point (controls, surrogates, bidi, noncharacters) and a stride through the astral planes
CODE_POINTS = [*range(0x10000), *range(0x10000, 0x110000, 251), 0x10FFFF]


def test_both_apps_refuse_the_same_characters_for_the_same_reason():
    differ = [hex(c) for c in CODE_POINTS
              if legacy_rules.text_problem(f"a{chr(c)}b") != es_rules.text_problem(f"a{chr(c)}b")]
    assert differ == []


def test_what_is_refused():
    refused = {c for c in CODE_POINTS if legacy_rules.text_problem(chr(c)) is not None}
    assert refused == {*range(0x20), *range(0x7F, 0xA0), *range(0xD800, 0xE000),
                       *range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def test_checked_text_leaves_other_types_to_the_field():
    for rules in (es_rules, legacy_rules):
        assert rules.checked_text(5) == 5 and rules.checked_text(None) is None
        assert rules.checked_text("Zoë") == "Zoë"


def test_search_terms_refuse_controls_and_surrogates_but_not_bidi():
    assert legacy_rules.checked_search("\u202e") == "\u202e"
    assert legacy_rules.control_problem("a\x00") == "must not contain control characters (U+0000)"


def test_neither_app_loads_the_other():
    def loaded(module: str) -> set[str]:
        code = f"import sys, {module}; print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
        return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True).stdout.split())

    assert loaded("legacy_app.api") & {"es_app", "migrator"} == set()
    assert "legacy_app" not in loaded("es_app.api")
