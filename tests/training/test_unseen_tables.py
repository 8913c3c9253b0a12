"""Tables and archives as a new user brings them, read by the engine's upload code: row
numbers under the names people give them are no features, a header-less file of categories
keeps its first row, a lone sentence column is text, a typo in a numeric column is named with
its row, a wide numeric table reads quickly enough to upload, and a Windows PowerShell ZIP
or one with annotation files and hidden folders reads as images."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from training.data.uploads import (
    TableOptions,
    UploadError,
    prepare_table,
    read_csv,
    read_image_zip,
)


def table(data: bytes, **options: object):
    return prepare_table(read_csv(io.BytesIO(data), "t.csv"),
                         TableOptions(**options))  # type: ignore[arg-type]


def steps(prepared) -> list[str]:
    return [s["step"] for s in prepared.report["steps"] if s["count"]]


def iris(sorted_by_class: bool = True) -> pd.DataFrame:
    from sklearn.datasets import load_iris

    loaded = load_iris()
    frame = pd.DataFrame(loaded.data, columns=[c.replace(" ", "_") for c in
                                               loaded.feature_names])
    frame["species"] = loaded.target_names[loaded.target]
    return frame if sorted_by_class else frame.sample(frac=1, random_state=0)


# --- row numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["No", "S.No", "Sr. No.", "row_number", "n", "record",
                                  "#", "index"])
def test_a_column_numbering_the_rows_is_left_out_under_the_names_people_give_it(name: str
                                                                                 ) -> None:
    # given iris sorted by class with the rows numbered 1..150 first: a leak as a feature
    frame = iris()
    frame.insert(0, name, np.arange(1, len(frame) + 1))

    prepared = table(frame.to_csv(index=False).encode())

    assert prepared.feature_names == list(frame.columns[1:-1])
    assert f"index column {name!r} left out (it numbers the rows)" in steps(prepared)


def test_row_numbers_kept_from_before_a_shuffle_are_left_out_wherever_the_column_is() -> None:
    # given shuffled rows that kept their numbers 0..149, in a column named "sample" at the end
    frame = iris().reset_index(names="sample").sample(frac=1, random_state=1)
    frame = frame[[*frame.columns[1:-1], "sample", "species"]]

    prepared = table(frame.to_csv(index=False).encode(), label_column="species")

    assert "sample" not in prepared.feature_names and len(prepared.feature_names) == 4


def test_a_column_of_another_name_counting_the_rows_is_kept_and_said() -> None:
    # given a time step "t" 0, 1, 2... beside a measurement (a trend may be what it means)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"t": np.arange(60), "x": rng.normal(size=60).round(3)})
    frame["y"] = 0.1 * frame["t"] + frame["x"]

    prepared = table(frame.to_csv(index=False).encode(), task="regression")

    assert prepared.feature_names == ["t", "x"]
    assert any(step.startswith("column 't' counts the rows") for step in steps(prepared))


def test_a_year_per_row_and_a_count_named_n_that_is_not_a_row_number_are_features() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"year": np.arange(1950, 2010), "n": rng.integers(0, 9, 60),
                          "y": rng.normal(size=60).round(3)})

    prepared = table(frame.to_csv(index=False).encode(), task="regression")

    assert prepared.feature_names == ["year", "n"]


# --- headers, text, typos ----------------------------------------------------------------------


def test_a_header_less_file_of_categories_keeps_its_first_row_as_data() -> None:
    # given UCI's mushrooms' shape: no header, every column a letter code (a first row with a
    # letter twice was refused as a header naming a column twice)
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"cap": rng.choice(list("xbsf"), 80), "odor": rng.choice(list("anpf"), 80),
                          "ring": rng.choice(list("ep"), 80)})
    frame.insert(0, "class", np.where(frame["odor"].isin(["a", "n"]), "e", "p"))
    content = frame.to_csv(index=False, header=False).encode()

    prepared = table(content, label_column="1", drop_duplicates=False)

    assert len(prepared.y) == 80 and prepared.label_names == ["e", "p"]
    assert prepared.feature_names[0] == "2=b"  # columns named 1, 2, 3...


def test_a_header_naming_a_column_twice_is_still_refused_with_the_way_out() -> None:
    content = b"text,label,label\nhi,a,b\nho,b,a\nha,a,a\nhe,b,b\n"

    with pytest.raises(UploadError, match="appears more than once.*choose no header row"):
        table(content)


def test_a_table_of_sentences_and_a_label_is_text_without_naming_the_column() -> None:
    # given SST-2's dev.tsv shape: sentence<TAB>label
    words = ["a gripping and lovely film", "a dull and tedious mess of a movie"]
    content = "sentence\tlabel\n" + "".join(f"{words[i % 2]} number {i}\t{i % 2}\n"
                                              for i in range(80))

    prepared = table(content.encode())

    assert prepared.info.modality == "text" and len(prepared.x) == 80
    assert "column 'sentence' read as the text to learn from (the one input column is " \
           "sentences)" in steps(prepared)


def test_a_lone_column_of_short_names_is_not_taken_for_text() -> None:
    content = "name,label\n" + "".join(f"Person {i},{i % 2}\n" for i in range(80))

    with pytest.raises(UploadError, match="no feature column is left"):
        table(content.encode())


def test_a_typo_in_a_numeric_column_is_refused_naming_its_row_and_the_way_out() -> None:
    frame = iris().astype({"sepal_length_(cm)": object})
    frame.iloc[5, 0] = "abc"

    with pytest.raises(UploadError) as refused:
        table(frame.to_csv(index=False).encode())

    assert refused.value.field == "feature_columns"
    assert "1 cell of 150 is text among numbers (data row 6): fix or empty it" in str(
        refused.value)


def test_words_with_a_few_numbers_among_them_are_refused_as_not_numeric() -> None:
    frame = iris().assign(colour=["red", "blue", "green"] * 50)
    frame.loc[:5, "colour"] = "1"

    with pytest.raises(UploadError, match=r"'colour' is not numeric \(e.g. 'red'\): choose "
                                          "numeric feature columns"):
        table(frame.to_csv(index=False).encode(), label_column="species")


def test_ages_as_the_label_of_a_classification_are_said_to_look_like_a_measurement() -> None:
    # given a label of ages 18 to 65: few enough values, without gaps, to pass as classes
    rng = np.random.default_rng(4)
    frame = pd.DataFrame({"income": rng.normal(size=300).round(3),
                          "age": rng.integers(18, 66, 300)})

    prepared = table(frame.to_csv(index=False).encode())

    assert "'age' holds 48 different numbers (18 to 65), trained as classes: choose " \
           "Regression if it is a measurement" in steps(prepared)
    # while class ids counted from 0, however many, are not
    frame["age"] = frame["age"] - 18
    assert not any("measurement" in step for step in steps(table(
        frame.to_csv(index=False).encode())))


def test_a_file_with_lines_ended_by_cr_alone_reads() -> None:
    # given Excel for Mac's "CSV (Macintosh)": each line ended by a carriage return alone
    content = iris().to_csv(index=False, lineterminator="\r").encode()

    prepared = table(content, drop_duplicates=False)

    assert len(prepared.y) == 150 and len(prepared.feature_names) == 4


def test_too_few_rows_after_cleaning_says_what_cleaning_dropped() -> None:
    content = "constant,label\n" + "1,a\n1,b\n" * 25

    with pytest.raises(UploadError, match=r"only 2 rows left after cleaning \(duplicate rows "
                                          r"dropped: 48\): a dataset needs at least 4"):
        table(content.encode())


def test_a_line_with_a_cell_too_many_is_refused_naming_the_line_and_the_fix() -> None:
    content = "a,b,label\n" + "1,2,x\n" * 30 + "1,2,5,y\n"

    with pytest.raises(UploadError, match="line 32 has 4 cells where the lines above have 3; "
                                          "quote a cell that holds the separator"):
        table(content.encode())


def test_two_thousand_numeric_columns_read_with_every_column_a_feature() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(30, 1999)).round(2),
                         columns=[f"f{i}" for i in range(1999)]).assign(label=np.arange(30) % 2)

    prepared = table(frame.to_csv(index=False).encode())

    assert prepared.info.input_shape == (1999,)


# --- image archives ----------------------------------------------------------------------------


def png(level: int, index: int) -> bytes:
    rng = np.random.default_rng(index)
    pixels = np.clip(level + rng.normal(0, 10, (10, 10)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def archive(members: dict[str, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as written:
        for name, data in members.items():
            written.writestr(zipfile.ZipInfo(name), data)
    buffer.seek(0)
    return buffer


def two_classes(top: str = "pets/", sep: str = "/") -> dict[str, bytes]:
    return {f"{top}{name}{sep}{i}.png".replace("/", sep): png(60 + 120 * c, 10 * c + i)
            for c, name in enumerate(("cat", "dog")) for i in range(6)}


def test_a_windows_powershell_zip_with_backslashes_reads_its_class_folders() -> None:
    # given Compress-Archive's (Windows PowerShell 5.1) names: pets\cat\0.png
    prepared = read_image_zip(archive(two_classes(sep="\\")), 8)

    assert prepared.label_names == ["cat", "dog"] and len(prepared.y) == 12


def test_a_backslash_path_out_of_the_archive_is_still_refused() -> None:
    members = {**two_classes(), "..\\..\\evil.png": png(0, 99)}

    with pytest.raises(UploadError, match="Windows path.*path traversal"):
        read_image_zip(archive(members), 8)


def test_annotations_and_hidden_folders_beside_the_images_are_skipped() -> None:
    # given Pascal VOC's .xml files, a YOLO data.yaml, a notebook checkpoint and a .gitkeep
    members = {**two_classes(), "pets/cat/0.xml": b"<annotation/>", "pets/data.yaml": b"nc: 2",
               "pets/.ipynb_checkpoints/look-checkpoint.ipynb": b"{}", "pets/dog/.gitkeep": b""}

    prepared = read_image_zip(archive(members), 8)

    assert len(prepared.y) == 12
    assert {"pets/cat/0.xml", "pets/data.yaml"} <= set(
        next(s["detail"] for s in prepared.report["steps"] if "text files" in s["step"])
        .split(", "))


@pytest.mark.parametrize(("name", "words"), [("pets/cat/0.tif", "is a TIFF image"),
                                             ("pets/cat/run.py", "is not an image")])
def test_a_file_of_another_kind_is_refused_naming_what_it_is(name: str, words: str) -> None:
    with pytest.raises(UploadError, match=words):
        read_image_zip(archive({**two_classes(), name: b"II*\x00"}), 8)


def test_kaggles_cats_and_dogs_split_folders_nested_twice_are_pooled() -> None:
    # given training_set/training_set/cats/1.png and test_set/test_set/dogs/2.png
    members = {f"{split}/{split}/{name}/{i}.png": png(60 + 120 * c, 10 * c + i + 50 * s)
               for s, split in enumerate(("training_set", "test_set"))
               for c, name in enumerate(("cats", "dogs")) for i in range(4)}

    prepared = read_image_zip(archive(members), 8)

    assert prepared.label_names == ["cats", "dogs"] and len(prepared.y) == 16


def test_images_in_subfolders_of_a_class_folder_are_that_class() -> None:
    # given cat/2019/1.png beside cat/1.png, and dog/ with images of its own
    members = {**two_classes(top=""), "cat/2019/a.png": png(60, 70), "cat/2020/b.png": png(60, 71)}

    prepared = read_image_zip(archive(members), 8)

    assert prepared.label_names == ["cat", "dog"]
    assert int((prepared.y == 0).sum()) == 8
    assert any("subfolders of their class folder" in step for step in steps(prepared))


def test_folders_that_each_hold_the_same_folders_are_refused_as_ambiguous() -> None:
    # given fold1/cat, fold1/dog, fold2/cat, fold2/dog: the classes are folds or animals
    members = {f"fold{f}/{name}/{i}.png": png(60 + 120 * c, 10 * c + i + 50 * f)
               for f in (1, 2) for c, name in enumerate(("cat", "dog")) for i in range(4)}

    with pytest.raises(UploadError, match=r"the folders fold1, fold2 each hold the same folders "
                                          r"\(cat, dog\): which are the classes\?"):
        read_image_zip(archive(members), 8)
