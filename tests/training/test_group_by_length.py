"""Batches of texts of about the same length (``model.group_by_length``): every row still once
an epoch, far less padding than a random order, and a run that trains and repeats itself."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from training import MemoryReporter, run
from training.data.text import WordTokenizer, load_text_rows
from training.loop import LENGTH_WINDOW, batch_starts, grouped_by_length
from training.spec import SpecError

from .conftest import SpecFactory


@pytest.fixture(scope="module")
def imdb_lengths() -> torch.Tensor:
    """Token counts of the 1,000 IMDb review sentences under a word vocabulary."""
    rows = load_text_rows("imdb_sentences")
    tokens = WordTokenizer.build(rows.texts, max_size=5000, min_freq=1, max_length=64).encode(
        rows.texts)
    return tokens.attention_mask.sum(1)


def padded_tokens(order: torch.Tensor, lengths: torch.Tensor, batch: int) -> int:
    """Token slots the batches of ``order`` take when each pads to its longest text."""
    bounds = batch_starts(len(order), batch)
    return sum(int(lengths[order[a:b]].max()) * (b - a) for a, b in zip(bounds, bounds[1:],
                                                                        strict=False))


@pytest.mark.parametrize("rows", [1000, 999, 961, 33])  # 961 = 30 batches of 32 and one row
def test_every_row_is_drawn_once(imdb_lengths: torch.Tensor, rows: int) -> None:
    order = torch.randperm(rows, generator=torch.Generator().manual_seed(1))
    grouped = grouped_by_length(order, imdb_lengths, 32, torch.Generator().manual_seed(2))
    assert sorted(grouped.tolist()) == list(range(rows))


def test_a_last_short_batch_stays_last(imdb_lengths: torch.Tensor) -> None:
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(1))
    assert 1000 < 32 * LENGTH_WINDOW  # one window: sorted whole
    grouped = grouped_by_length(order, imdb_lengths, 32, torch.Generator().manual_seed(2))
    # 1000 = 31 batches of 32 and 8 rows: the 8 shortest texts, still at the end.
    assert imdb_lengths[grouped[-8:]].max() <= imdb_lengths[grouped[:-8]].min()


def test_grouping_cuts_the_padding_of_a_random_order(imdb_lengths: torch.Tensor) -> None:
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(1))
    grouped = grouped_by_length(order, imdb_lengths, 32, torch.Generator().manual_seed(2))
    real = int(imdb_lengths.sum())
    random_slots, grouped_slots = (padded_tokens(o, imdb_lengths, 32) for o in (order, grouped))
    assert random_slots > 2 * real  # the sentences' lengths vary a lot
    assert grouped_slots < 1.15 * real


def test_the_batches_come_in_a_shuffled_order(imdb_lengths: torch.Tensor) -> None:
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(1))
    grouped = grouped_by_length(order, imdb_lengths, 32, torch.Generator().manual_seed(2))
    longest = [int(imdb_lengths[grouped[i:i + 32]].max()) for i in range(0, 31 * 32, 32)]
    assert longest != sorted(longest, reverse=True)
    again = grouped_by_length(order, imdb_lengths, 32, torch.Generator().manual_seed(3))
    assert not torch.equal(grouped, again)


def test_a_text_run_grouped_by_length_trains_and_repeats_itself(make_spec: SpecFactory,
                                                                  tmp_path: Path) -> None:
    spec = make_spec({
        "data": {"dataset": "imdb_sentences"},
        "model": {"arch": "lstm", "embed_dim": 32, "hidden_size": 32, "group_by_length": True},
        "optim": {"lr": 3e-3},
        "run": {"epochs": 3, "batch_size": 32},
    })
    results = []
    for name in ("a", "b"):
        reporter = MemoryReporter()
        result = run(spec, reporter, tmp_path / name)
        assert result.status == "succeeded"
        results.append([value for _, value in reporter.series("loss")])
    assert results[0] == results[1]
    assert sum(results[0][-5:]) < sum(results[0][:5])


def test_grouping_by_length_is_refused_for_a_model_that_reads_no_text(
        make_spec: SpecFactory) -> None:
    with pytest.raises(SpecError) as caught:
        make_spec({"model": {"arch": "cnn", "group_by_length": True}})
    assert "text models" in caught.value.errors["model.group_by_length"]
