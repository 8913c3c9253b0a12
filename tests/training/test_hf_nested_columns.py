"""Hugging Face tables whose cells are records or lists (JSON lines as APIs and exporters write
them): a record's fields become columns, a fixed-length list of numbers one column per position,
other lists are left out and said; a list where the label is expected is refused, never spread
into a label and its own answer as a feature."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from training.data.uploads import TableOptions, UploadError, prepare_table, read_hf


def json_lines(tmp_path: Path, rows: list[dict[str, Any]], **options: Any):
    """``rows`` written as a .jsonl in ``tmp_path``, read as a Hugging Face table, prepared."""
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    frame = read_hf("rows.jsonl", "train", [tmp_path], tmp_path / "cache")
    return prepare_table(frame, TableOptions(**options))


def test_a_records_fields_are_features_not_a_sentence(tmp_path: Path) -> None:
    # given a record per row (whole, "{'x': 0, 'y': 0}" was read as the text to learn from)
    rows = [{"point": {"x": i, "y": (i * 7) % 5}, "label": i % 2} for i in range(40)]

    prepared = json_lines(tmp_path, rows)

    assert prepared.info.modality == "tabular" and prepared.feature_names == ["point.x",
                                                                              "point.y"]


def test_an_embedding_of_fixed_length_is_one_feature_per_position(tmp_path: Path) -> None:
    rows = [{"vec": [float(i), float(i % 3), 0.5], "label": i % 2} for i in range(40)]

    prepared = json_lines(tmp_path, rows)

    assert prepared.feature_names == ["vec[0]", "vec[1]", "vec[2]"]
    assert prepared.x[5].tolist() == [5.0, 2.0, 0.5]
    assert any("'vec' of lists made one column per position" in s["step"]
               for s in prepared.report["steps"])


def test_a_column_of_token_lists_beside_the_text_is_left_out_and_said(tmp_path: Path) -> None:
    rows = [{"tokens": ["a", "b", str(i)], "text": f"this is sentence {i} of some words",
             "label": i % 2} for i in range(60)]

    prepared = json_lines(tmp_path, rows)

    assert prepared.info.modality == "text"
    assert any("'tokens' of lists" in s["step"] and "left out" in s["step"]
               for s in prepared.report["steps"])


@pytest.mark.parametrize("labels", [
    lambda i: [i % 2, 1 - i % 2],  # one-hot: spread, its last position was the label and the
    lambda i: [i % 3],             # first a feature equal to the answer
    lambda i: list(range(i % 3 + 1)),  # several labels per row
])
def test_a_list_where_the_label_is_expected_is_refused_on_the_label_column(tmp_path: Path,
                                                                           labels) -> None:
    rows = [{"a": i, "b": (i * 7) % 5, "labels": labels(i)} for i in range(40)]

    with pytest.raises(UploadError) as refused:
        json_lines(tmp_path, rows)

    assert refused.value.field == "label_column" and "holds lists" in str(refused.value)


def test_a_table_of_the_label_alone_says_so(tmp_path: Path) -> None:
    with pytest.raises(UploadError, match="no column besides the label 'label'"):
        json_lines(tmp_path, [{"label": i % 2} for i in range(20)])
