"""The README's table of bad input is what fastnn does today (see bad_input_cases.py)."""
import pytest

from bad_input_cases import CASES, README, readme_table, render, run


@pytest.mark.parametrize("case", CASES, ids=[c.tried for c in CASES])
def test_bad_input_case(case):
    run(case)


def test_the_readme_table_is_up_to_date():
    assert readme_table(README.read_text()) == render(), \
        "README.md's bad-input table is stale: run python tests/bad_input_cases.py --write"
