"""CSV exports: no cell a user could have typed opens as a spreadsheet formula, whatever it
holds (hypothesis, 500 exports of arbitrary text)."""

from __future__ import annotations

import csv
import io

from hypothesis import given, settings
from hypothesis import strategies as st

from webapp.experiments.compare import FORMULA_START, to_csv

TEXT = st.one_of(st.text(max_size=30),
                 st.sampled_from(FORMULA_START).flatmap(lambda c: st.text(max_size=20).map(
                     lambda rest: c + rest)))


@settings(max_examples=500, deadline=None)
@given(records=st.lists(st.dictionaries(TEXT, st.one_of(TEXT, st.floats(), st.integers(),
                                                        st.lists(TEXT, max_size=3)),
                                        min_size=1, max_size=4), min_size=1, max_size=3))
def test_no_exported_cell_starts_like_a_formula(records):
    rows = list(csv.reader(io.StringIO(to_csv(records), newline="")))

    # every cell, header included, either starts harmlessly or is one of our own numbers
    for row in rows:
        for cell in row:
            if cell.startswith(FORMULA_START):
                float(cell)  # a number we wrote, e.g. -0.5: stays a number
    assert len(rows) == len(records) + 1
