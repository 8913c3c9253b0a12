"""The word-level tokenizer of Fitboard's LSTM, GRU and Transformer text models.

This is the only copy of its encoding: Fitboard's engine (``training.data.text.WordTokenizer``)
extends this class with the vocabulary building, so texts become the same ids here as in
training.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Mapping, Sequence
from typing import TypeVar

import numpy as np
import torch

PAD, UNK = "<pad>", "<unk>"
# Scripts written without spaces between words (Chinese hanzi, Japanese kana and kanji): each
# character is a token. As "words", a whole sentence was one token that no other sentence
# shares, and a Chinese review set trained at chance (0.50 validation accuracy, English 1.00).
UNSPACED = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Words and single punctuation marks; apostrophes stay inside words ("don't", SST-2's "'s").
WORD_PATTERN = rf"[{UNSPACED}]|(?:(?![{UNSPACED}])[\w'])+|[^\w\s]"
# Checkpoints written before UNSPACED carry this one (in their vocab.json), and keep it: their
# vocabularies hold whole unspaced sentences.
WORDS_ONLY_PATTERN = r"[\w']+|[^\w\s]"
# The patterns a vocab.json may name: a checkpoint is a stranger's file, and a regular
# expression of its own choosing could take the predicting process minutes per text.
KNOWN_PATTERNS = (WORD_PATTERN, WORDS_ONLY_PATTERN)
V = TypeVar("V", bound="WordVocabulary")


def pad_rows(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists to the longest one: (ids, mask), both (N, L) int64, mask 1 on real
    tokens (vectorised: a data set has tens of thousands of rows)."""
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    width = max(1, int(lengths.max(initial=0)))
    mask = np.arange(width) < lengths[:, None]
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    # A boolean mask assigns in row-major order: exactly the order of the concatenated rows.
    ids[mask] = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64,
                            count=int(lengths.sum()))
    return torch.from_numpy(ids), torch.from_numpy(mask.astype(np.int64))


class WordVocabulary:
    """A word-level vocabulary: lower-cased words and punctuation; id 0 is ``<pad>``, id 1
    ``<unk>`` (every word not in it). Texts are cut to ``max_length`` tokens."""

    def __init__(self, vocab: Sequence[str], max_length: int,
                 pattern: str = WORD_PATTERN) -> None:
        if list(vocab[:2]) != [PAD, UNK]:
            raise ValueError(f"a vocabulary starts with {PAD} and {UNK}")
        if pattern not in KNOWN_PATTERNS:
            raise ValueError(f"unknown word pattern {pattern!r}")
        self.vocab = list(vocab)
        self.ids = {word: i for i, word in enumerate(self.vocab)}
        self.max_length = max_length
        self.pattern = pattern

    @staticmethod
    def split(text: str, pattern: str = WORD_PATTERN) -> list[str]:
        """Lower-cased words and punctuation marks of a text, in order (characters of an
        unspaced script, see UNSPACED)."""
        return re.findall(pattern, text.lower())

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def encode_ids(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention masks of texts, right-padded to the longest (cut) text."""
        # An empty text still gets one token: the recurrent models need a length of at least 1.
        rows = [[self.ids.get(w, 1) for w in self.split(t, self.pattern)][:self.max_length]
                or [1]
                for t in texts]
        return pad_rows(rows, 0)

    @classmethod
    def from_files(cls: type[V], files: Mapping[str, bytes]) -> V:
        """The vocabulary a checkpoint carries as ``tokenizer/vocab.json``."""
        document = json.loads(files["vocab.json"])
        if document.get("type", "word") != "word":
            raise ValueError(f"unknown tokenizer type {document.get('type')!r}")
        return cls(document["vocab"], int(document["max_length"]),
                   str(document.get("pattern", WORDS_ONLY_PATTERN)))
