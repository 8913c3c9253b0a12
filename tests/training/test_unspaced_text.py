"""Text in scripts written without spaces (Chinese, Japanese): the word tokenizer splits it into
characters, so an uploaded Chinese review set learns; a checkpoint's vocabulary built the old
way keeps encoding as it was trained."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from tests.training.conftest import SpecFactory
from training import MemoryReporter, run
from training.data import DataSources
from training.data.text import WordTokenizer
from training.data.uploads import TableOptions, prepare_table, read_csv, save_prepared


def test_chinese_and_japanese_are_split_into_characters_beside_spaced_words() -> None:
    assert WordTokenizer.split("我们很好。Don't stop") == ["我", "们", "很", "好", "。", "don't",
                                                          "stop"]
    assert WordTokenizer.split("これはペン") == ["こ", "れ", "は", "ペ", "ン"]
    assert WordTokenizer.split("한국어 문장") == ["한국어", "문장"]  # Korean has spaces


def test_a_vocabulary_saved_before_keeps_its_whole_word_encoding() -> None:
    # given a checkpoint's vocab.json from before: whole unspaced runs were one word
    document = {"type": "word", "pattern": r"[\w']+|[^\w\s]", "lowercase": True,
                "max_length": 8, "vocab": ["<pad>", "<unk>", "很好", "。"]}

    tokenizer = WordTokenizer.from_files({"vocab.json": json.dumps(document).encode()})

    # then its texts become the ids it was trained on, and it saves the same pattern
    assert tokenizer.encode(["很好。"]).input_ids.tolist() == [[2, 3]]
    assert json.loads(tokenizer.files()["vocab.json"])["pattern"] == document["pattern"]


def test_a_vocabulary_naming_a_pattern_of_its_own_is_refused() -> None:
    document = {"type": "word", "pattern": "(a+)+$", "max_length": 8, "vocab": ["<pad>", "<unk>"]}

    with pytest.raises(ValueError, match="unknown word pattern"):
        WordTokenizer.from_files({"vocab.json": json.dumps(document).encode()})


def chinese_reviews(rows: int = 240, seed: int = 0) -> bytes:
    """A CSV of short Chinese sentences whose class is one word in each (好/棒 or 差/烂)."""
    rng = np.random.default_rng(seed)
    filler = list("我们今天去了那个地方看电影吃饭朋友一起觉得这个非常真的")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["评论", "情感"])
    for i in range(rows):
        positive = i % 2 == 0
        words = "".join(rng.choice(filler, 10))
        cut = int(rng.integers(0, 10))
        word = str(rng.choice(["好", "棒"] if positive else ["差", "烂"]))
        writer.writerow([words[:cut] + word + words[cut:] + "。", "正面" if positive else "负面"])
    return buffer.getvalue().encode()


def test_an_uploaded_chinese_review_set_trains_beyond_chance(make_spec: SpecFactory,
                                                             tmp_path: Path) -> None:
    # given Chinese reviews uploaded as a CSV (every sentence was one unknown "word": 0.50)
    prepared = prepare_table(read_csv(io.BytesIO(chinese_reviews()), "reviews.csv"),
                             TableOptions(text_column="评论"))
    path = tmp_path / "prepared.npz"
    with path.open("wb") as handle:
        save_prepared(prepared, "upload:900301", handle)
    sources = DataSources(uploads={"upload:900301": path})  # the engine learns its facts

    # when an LSTM trains on it for a few epochs
    spec = make_spec({"data": {"dataset": "upload:900301"},
                      "model": {"arch": "lstm", "embed_dim": 16, "hidden_size": 16,
                                "min_freq": 1, "max_length": 24},
                      "optim": {"lr": 0.01}, "run": {"epochs": 6, "batch_size": 32}})
    result = run(spec, MemoryReporter(), tmp_path / "run", sources=sources)

    # then it tells the classes apart
    assert result.best_metrics["val_acc"] >= 0.8
