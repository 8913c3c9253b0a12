"""A ZIP of images beside a labels CSV (Kaggle's layout), read by the engine's upload code: the
column naming the images and the column of classes are found under the names people give
them, rows and images that do not pair are counted and named, what cannot be decided is
refused on the field that decides it, the archive's defences hold, and a CNN trained on the
result from what "Train on it" proposes beats chance."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from training import MemoryReporter, run
from training.data import DataSources
from training.data.catalog import remember
from training.data.image_labels import LabelColumns
from training.data.uploads import Limits, UploadError, read_image_zip, save_prepared
from training.spec import proposed_for

from ..hostile import image_zip, png


def digits(count: int = 120, classes: int = 4) -> tuple[list[bytes], list[int]]:
    """scikit-learn's 8×8 digits of the first ``classes`` classes as grey PNGs, and their
    classes."""
    from sklearn.datasets import load_digits

    loaded = load_digits(n_class=classes)
    pictures = []
    for pixels in loaded.images[:count]:
        buffer = io.BytesIO()
        Image.fromarray((pixels * 16).clip(0, 255).astype(np.uint8)).save(buffer, format="PNG")
        pictures.append(buffer.getvalue())
    return pictures, [int(t) for t in loaded.target[:count]]


def flat_with_table(table: str, rows: list[str], name: str = "labels.csv",
                    folder: str = "images/", count: int = 40) -> bytes:
    """``count`` digits as ``folder``0000.png… beside a table of ``table`` (its header) and
    ``rows`` (format strings of ``i``, ``stem``, ``label``), one per image."""
    pictures, labels = digits(count)
    members = {f"{folder}{i:04d}.png": p for i, p in enumerate(pictures)}
    lines = [table] + [row.format(i=i, stem=f"{i:04d}", label=labels[i]) for i in range(count)
                       for row in rows]
    members[name] = ("\n".join(lines) + "\n").encode()
    return image_zip(members)


def read(archive: bytes, **columns: str) -> Any:
    return read_image_zip(io.BytesIO(archive), image_size=8, columns=LabelColumns(**columns))


def steps(prepared: Any) -> dict[str, dict[str, Any]]:
    return {s["step"]: s for s in prepared.report["steps"] if s["count"]}


@pytest.mark.parametrize(("header", "row", "name"), [
    ("id,label", "{stem},{label}", "labels.csv"),  # the id without its extension
    ("filename,class", "{stem}.png,{label}", "train.csv"),
    ("image,target", "images/{stem}.png,{label}", "data.csv"),  # a path from the table's folder
    ("image_id\tlabel", "{stem}\t{label}", "labels.tsv"),
    ("file;category", ".\\images\\{stem}.PNG;{label}", "labels.csv"),  # Windows, any case
])
def test_the_columns_are_found_under_the_names_people_give_them(header: str, row: str,
                                                                 name: str) -> None:
    prepared = read(flat_with_table(header, [row], name))

    image_column, label_column = header.replace("\t", ",").replace(";", ",").split(",")
    assert prepared.x.shape == (40, 1, 8, 8)
    assert prepared.label_names == ["0", "1", "2", "3"]
    assert f"labels read from {name}: images named in {image_column!r}, labels in " \
           f"{label_column!r}" in steps(prepared)
    assert "text files beside the images skipped" not in steps(prepared)


def test_the_labels_are_the_tables_and_not_the_order_of_the_files() -> None:
    # given the table's rows in reverse order
    pictures, labels = digits(40)
    members = {f"images/{i:04d}.png": p for i, p in enumerate(pictures)}
    members["labels.csv"] = ("id,label\n" + "".join(f"{i:04d},{labels[i]}\n"
                                                    for i in reversed(range(40)))).encode()

    prepared = read(image_zip(members))

    # then each image has its own class: the same pixels as a class-folder archive's
    folders = read_image_zip(io.BytesIO(image_zip({f"{labels[i]}/{i:04d}.png": p
                                                for i, p in enumerate(pictures)})), 8)
    def pairs(read_set: Any) -> list[tuple[int, int]]:
        sums = read_set.x.reshape(40, -1).sum(1).tolist()
        return sorted(zip(read_set.y.tolist(), sums, strict=True))

    assert pairs(prepared) == pairs(folders)


def with_table(table: bytes, name: str = "labels.csv", count: int = 40) -> bytes:
    """``count`` digits as images/0000.png… beside ``table``."""
    pictures, _ = digits(count)
    return image_zip({**{f"images/{i:04d}.png": p for i, p in enumerate(pictures)}, name: table})


def test_a_header_less_table_keeps_its_first_row() -> None:
    _, labels = digits(40)
    table = "".join(f"{i:04d}.png,{labels[i]}\n" for i in range(40)).encode()

    prepared = read(with_table(table))

    assert prepared.x.shape[0] == 40
    assert "labels read from labels.csv: images named in '1', labels in '2'" in steps(prepared)


def test_rows_and_images_that_do_not_pair_are_counted_and_named() -> None:
    # given a table listing an image the archive lacks, one twice, one twice with two labels,
    # one without a label, and leaving two of the archive's images out
    pictures, labels = digits(40)
    members = {f"images/{i:04d}.png": p for i, p in enumerate(pictures)}
    lines = ["image_id,label"] + [f"{i:04d},{labels[i]}" for i in range(38)]
    lines += ["9999,1", f"0001,{labels[1]}", f"0002,{(labels[2] + 1) % 4}", "0003,",
              ",2"]
    lines.remove(f"0003,{labels[3]}")
    members["labels.csv"] = "\n".join(lines).encode()

    prepared = read(image_zip(members))

    found = steps(prepared)
    assert found["rows of labels.csv naming no image in the archive skipped"]["detail"] == \
        "'9999'"
    assert found["repeated rows of labels.csv dropped"]["count"] == 1
    assert found["images given different labels in labels.csv skipped"]["detail"] == \
        "'images/0002.png'"
    assert found["rows of labels.csv without a label skipped"]["detail"] == "'images/0003.png'"
    assert found["rows of labels.csv without an image name skipped"]["count"] == 1
    assert found["images not listed in labels.csv skipped"]["detail"] == \
        "'images/0038.png', 'images/0039.png'"
    assert prepared.x.shape[0] == 40 - 2 - 2  # not listed, different labels, no label


def test_kaggles_train_folder_and_table_beside_a_test_folder_and_a_sample_submission() -> None:
    # given train/ and test/ holding the same file names, train.csv for train/ and a
    # sample_submission.csv of test/ with a placeholder label
    pictures, labels = digits(60)
    members = {f"train/{i}.png": pictures[i] for i in range(40)}
    members.update({f"test/{i}.png": pictures[40 + i] for i in range(20)})
    members["train.csv"] = ("id,label\n" + "".join(f"{i},{labels[i]}\n"
                                                   for i in range(40))).encode()
    members["sample_submission.csv"] = ("id,label\n" + "".join(f"{i},0\n"
                                                               for i in range(20))).encode()

    prepared = read(image_zip(members))

    # then train/'s images have train.csv's labels, and test/'s are skipped, named
    assert prepared.x.shape[0] == 40
    assert prepared.report["class_counts"] == {str(c): labels[:40].count(c) for c in range(4)}
    assert steps(prepared)["images not listed in train.csv skipped"]["count"] == 20
    assert "sample_submission.csv" in steps(prepared)["text files beside the images skipped"][
        "detail"]


def test_a_class_id_beside_a_class_name_is_one_column_the_names_chosen() -> None:
    names = ("zero", "one", "two", "three")
    _, labels = digits(40)
    table = "image_id,class_id,class_name\n" + "".join(
        f"{i:04d},{labels[i]},{names[labels[i]]}\n" for i in range(40))

    prepared = read(with_table(table.encode()))

    assert prepared.label_names == sorted(names)


def test_the_column_named_as_a_label_is_chosen_among_others_and_said() -> None:
    _, labels = digits(40)
    table = "image_id,camera,label\n" + "".join(f"{i:04d},cam{i % 3},{labels[i]}\n"
                                                 for i in range(40))

    prepared = read(with_table(table.encode()))

    assert prepared.label_names == ["0", "1", "2", "3"]
    assert "label column 'label' chosen by its name among 'camera', 'label'" in steps(prepared)


def test_several_columns_that_could_be_the_label_are_refused_naming_them() -> None:
    # given HAM10000's shape: image_id, then dx and sex, either of which could be the class
    _, labels = digits(40)
    table = "image_id,dx,sex\n" + "".join(f"{i:04d},{labels[i]},{'mf'[i % 2]}\n"
                                           for i in range(40))
    archive = with_table(table.encode())

    with pytest.raises(UploadError) as caught:
        read(archive)

    assert caught.value.field == "label_column"
    assert "several columns that could be the label: 'dx', 'sex'; name one in Label column" \
        in str(caught.value)
    # and naming one in the label column field reads it
    assert read(archive, label="dx").label_names == ["0", "1", "2", "3"]


def _members(archive: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        return {name: opened.read(name) for name in opened.namelist()}


def test_a_table_naming_none_of_the_images_is_refused_saying_what_it_holds() -> None:
    archive = flat_with_table("id,label", ["x{i},{label}"])

    with pytest.raises(UploadError) as caught:
        read(archive)

    assert caught.value.field == "file"
    assert "no column of 'labels.csv' holds the images' names" in str(caught.value)
    assert "'images/0000.png'" in str(caught.value)


def test_a_named_column_the_table_lacks_is_refused_on_its_field() -> None:
    with pytest.raises(UploadError) as caught:
        read(flat_with_table("id,label", ["{stem},{label}"]), label="class")

    assert caught.value.field == "label_column"
    assert "labels.csv has no column 'class'; its columns are: 'id', 'label'" in \
        str(caught.value)


def test_class_folders_and_a_table_labelling_them_otherwise_are_refused_as_ambiguous() -> None:
    pictures, labels = digits(40)
    members = {f"{'ab'[i % 2]}/{i}.png": p for i, p in enumerate(pictures)}
    members["meta.csv"] = ("file,digit\n" + "".join(f"{i}.png,{labels[i]}\n"
                                                    for i in range(40))).encode()

    with pytest.raises(UploadError) as caught:
        read(image_zip(members))

    assert caught.value.field == "label_column"
    assert "the class folders ('a', 'b') and meta.csv's column 'digit' label the images " \
           "differently" in str(caught.value)
    assert read(image_zip(members), label="digit").label_names == ["0", "1", "2", "3"]


def test_class_folders_beside_a_table_of_other_facts_keep_their_labels() -> None:
    # a table naming the images with a split column and a measurement: no classes in it
    pictures, _ = digits(40)
    members = {f"{'ab'[i % 2]}/{i}.png": p for i, p in enumerate(pictures)}
    members["meta.csv"] = ("file,split,width\n" + "".join(
        f"{i}.png,{'train' if i % 3 else 'test'},{100 + i}\n" for i in range(40))).encode()

    prepared = read(image_zip(members))

    assert prepared.label_names == ["a", "b"]
    assert "meta.csv" in steps(prepared)["text files beside the images skipped"]["detail"]


# --- the archive's defences hold ---------------------------------------------------------------


@pytest.mark.parametrize(("extra", "words"), [
    ({"../../evil.png": png()}, "path traversal"),
    ({"images/run.py": b"import os"}, "not an image"),
    ({"big.csv": b"id,label\n" + b"0" * (20 * 2**20)}, "decompression bomb"),
])
def test_a_hostile_member_beside_a_labels_table_is_still_refused(extra: dict[str, bytes],
                                                                  words: str) -> None:
    archive = image_zip({**_members(flat_with_table("id,label", ["{stem},{label}"])), **extra})

    with pytest.raises(UploadError) as caught:
        read(archive)

    assert words in str(caught.value)


def test_the_labels_table_counts_in_the_unpacked_size_limit() -> None:
    archive = flat_with_table("id,label", ["{stem},{label}"])
    images = sum(m.file_size for m in zipfile.ZipFile(io.BytesIO(archive)).infolist()
                 if m.filename.endswith(".png"))

    with pytest.raises(UploadError) as caught:
        read_image_zip(io.BytesIO(archive), 8, limits=Limits(max_unpacked_bytes=images + 10))

    assert f"the limit is {images + 10}" in str(caught.value)


def test_every_table_counts_in_the_unpacked_size_limit_not_each_alone() -> None:
    # given two tables, each within what the images leave of the limit, both together past it
    members = _members(flat_with_table("id,label", ["{stem},{label}"]))
    members["more.csv"] = members["labels.csv"]
    images = sum(len(data) for name, data in members.items() if name.endswith(".png"))
    limit = images + len(members["labels.csv"]) * 3 // 2

    with pytest.raises(UploadError) as caught:
        read_image_zip(io.BytesIO(image_zip(members)), 8, limits=Limits(max_unpacked_bytes=limit))

    assert f"the limit is {limit}" in str(caught.value)


def test_a_path_out_of_the_archive_in_a_cell_only_names_no_image() -> None:
    members = _members(flat_with_table("id,label", ["{stem},{label}"]))
    members["labels.csv"] += b"../../../etc/passwd,1\n/etc/shadow,2\n"
    archive = image_zip(members)

    prepared = read(archive)

    assert steps(prepared)["rows of labels.csv naming no image in the archive skipped"][
        "detail"] == "'../../../etc/passwd', '/etc/shadow'"


def test_a_table_of_more_rows_than_the_limit_is_refused() -> None:
    with pytest.raises(UploadError) as caught:
        read_image_zip(io.BytesIO(flat_with_table("id,label", ["{stem},{label}"])), 8,
                       limits=Limits(max_rows=10))

    assert "more than 10 rows" in str(caught.value)


def test_a_table_without_images_is_refused_for_holding_no_images() -> None:
    with pytest.raises(UploadError) as caught:
        read(image_zip({"labels.csv": b"id,label\n1,a\n2,b\n"}))

    assert str(caught.value) == "the archive holds no images"


def test_a_flat_folder_without_a_table_is_still_refused_saying_what_to_add() -> None:
    with pytest.raises(UploadError) as caught:
        read(image_zip({f"{i}.png": png(10 * i) for i in range(6)}))

    assert "is not in a class folder" in str(caught.value)
    assert "labels CSV" in str(caught.value)


# --- training ----------------------------------------------------------------------------------


def test_a_cnn_trained_as_train_on_it_proposes_beats_chance(make_spec, tmp_path: Path) -> None:
    # given 240 digits of four classes in one folder beside labels.csv, stored as an upload
    prepared = read_image_zip(io.BytesIO(flat_with_table("id,label", ["{stem},{label}"],
                                                         count=240)), image_size=16)
    path = tmp_path / "prepared.npz"
    with path.open("wb") as handle:
        remember(save_prepared(prepared, "upload:900031", handle))  # as load_prepared does

    # when the model "Train on it" proposes trains for two epochs
    patch: dict[str, dict[str, Any]] = {"data": {"dataset": "upload:900031"},
                                        "run": {"epochs": 2, "batch_size": 16, "seed": 0},
                                        "optim": {"lr": 0.01}}
    for field_path, value in proposed_for(prepared.info).items():
        section, name = field_path.split(".")
        patch.setdefault(section, {})[name] = value
    result = run(make_spec(patch), MemoryReporter(), tmp_path / "run",
                 sources=DataSources(uploads={"upload:900031": path}))

    # then it classifies the validation split well above chance (0.25)
    assert patch["model"]["arch"] == "cnn"
    assert result.best_metrics["val_acc"] >= 0.6, result.best_metrics


# --- a .txt list of image names and classes -----------------------------------------------------


@pytest.mark.parametrize(("header", "row"), [
    ("", "{stem}.png {label}"),  # ImageNet's val.txt: a name and a class, apart by a space
    ("filename\tlabel", "images/{stem}.png\t{label}"),  # a header, a tab
    ("# name, class", "{stem},{label}"),  # a comment, commas
])
def test_a_txt_list_of_names_and_classes_labels_the_images(header: str, row: str) -> None:
    prepared = read(flat_with_table(header, [row], "labels.txt"))

    assert prepared.x.shape == (40, 1, 8, 8)
    assert prepared.label_names == ["0", "1", "2", "3"]
    assert any(s.startswith("labels read from labels.txt") for s in steps(prepared))


def test_a_class_with_spaces_in_a_txt_list_is_one_class() -> None:
    _, labels = digits(40)
    names = ["golden retriever", "tabby cat", "red fox", "sea lion"]
    table = "".join(f"{i:04d}.png {names[labels[i]]}\n" for i in range(40)).encode()

    prepared = read(with_table(table, "val.txt"))

    assert prepared.label_names == sorted(names)


def test_a_readme_txt_beside_class_folders_or_a_labels_csv_is_a_document() -> None:
    # given a README whose lines are words and sentences, beside class folders, and beside a
    # flat folder labelled by a CSV
    readme = b"Digits\n\nEach image is 8 by 8 pixels.\nLicence: CC0\n"
    pictures, labels = digits(40)
    foldered = image_zip({**{f"{labels[i]}/{i:04d}.png": p for i, p in enumerate(pictures)},
                          "README.txt": readme})
    tabled = image_zip({**{f"images/{i:04d}.png": p for i, p in enumerate(pictures)},
                        "README.txt": readme, "labels.csv": (
                            "id,label\n" + "".join(f"{i:04d},{labels[i]}\n" for i in range(40))
                        ).encode()})

    # then each reads as it did without it, the README skipped as a text file
    for archive in (foldered, tabled):
        prepared = read(archive)
        assert prepared.label_names == ["0", "1", "2", "3"] and len(prepared.y) == 40
        assert "README.txt" in steps(prepared)["text files beside the images skipped"]["detail"]


def test_a_flat_folder_beside_only_a_readme_is_refused_saying_what_to_add() -> None:
    with pytest.raises(UploadError) as caught:
        read(image_zip({**{f"{i}.png": png(10 * i) for i in range(6)},
                        "README.txt": b"Six pictures\n"}))

    assert "is not in a class folder" in str(caught.value)


def test_a_txt_past_the_limits_is_a_document_as_before() -> None:
    # a .txt of more rows than the limit is not read as a list: beside class folders the
    # archive reads as it did before lists were read
    pictures, labels = digits(40)
    members = {f"{labels[i]}/{i:04d}.png": p for i, p in enumerate(pictures)}
    members["notes.txt"] = "".join(f"word{i} another\n" for i in range(50)).encode()

    prepared = read_image_zip(io.BytesIO(image_zip(members)), 8, limits=Limits(max_rows=10))

    assert prepared.label_names == ["0", "1", "2", "3"]


def test_a_labels_csv_is_chosen_over_a_txt_list_naming_the_same_images() -> None:
    # given Kaggle's labels.csv beside a split list naming the same images with ids
    pictures, labels = digits(40)
    members = {f"images/{i:04d}.png": p for i, p in enumerate(pictures)}
    members["labels.csv"] = ("id,label\n" + "".join(f"{i:04d},{labels[i]}\n"
                                                    for i in range(40))).encode()
    members["train.txt"] = "".join(f"{i:04d}.png {i % 2}\n" for i in range(40)).encode()

    prepared = read(image_zip(members))

    assert prepared.label_names == ["0", "1", "2", "3"]
    assert any(s.startswith("labels read from labels.csv") for s in steps(prepared))
