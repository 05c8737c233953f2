"""IMDB and SNLI as sequences of word2vec vectors, preprocessed as Bal & Sengupta (2023), read from a data folder.

Bal & Sengupta ("Sequence learning using equilibrium propagation") feed 300-d ``word2vec-google-news-300``
vectors to their models (see ``algorithms.md`` §E.4). This module reproduces their preprocessing with numpy,
torch and the standard library only (no nltk, gensim, keras, BeautifulSoup):

* :func:`load_word2vec` reads the word2vec format as gensim's ``KeyedVectors.load_word2vec_format`` does, in
  its text form (a header line ``"count dim"``, then ``"word v1 ... vdim"`` per line) and its binary form (a
  header line ``"count dim\\n"``, then per word the UTF-8 word up to a space and ``dim`` little-endian float32,
  optionally followed by ``"\\n"``), plain or gzipped (``.gz``). ``vocab`` keeps only the words asked for (the
  Google News file has 3 M words, 3.6 GB in memory). A duplicated word keeps its first vector (as gensim).
* IMDB (:func:`tokenize_imdb`): HTML tags removed, ``[...]`` removed, characters outside ``[a-zA-Z0-9.!?,\\s]``
  removed, lowercased, then tokenised (see below).
* SNLI (:func:`tokenize_snli`): ``.``, ``?``, ``!`` spaced out, other non-alphanumeric characters removed
  (deleted, not replaced by a space: ``"don't"`` gives ``"dont"``), lowercased, split on whitespace.
* :func:`embed`: every token is looked up; out-of-vocabulary tokens are **dropped** (not zero vectors); the
  sequence is truncated to its first ``seq_len`` tokens or padded with zero vectors at the end.
* :func:`imdb_sequences` and :func:`snli_sequences` give a split as :class:`TokenSequences`: token indices
  (N, L) int32 into one (V + 1, dim) float32 matrix of the V words the split uses (row 0, the padding, is a
  zero vector), embedded item by item on access. The full splits embedded densely would be large: IMDB
  25,000 × 600 × 300 float32 = 18 GB per split, SNLI 540,000 × 50 × 300 = 32 GB. Both tokenise the split
  first and read only the vectors of its vocabulary.
* :func:`load_imdb` gives ``(x (N, seq_len, dim) float32, y (N,) int64)``, pos = 1, neg = 0;
  :func:`load_snli` gives ``(x (N, 2·seq_len, dim), y)`` with premise then hypothesis (each cut or padded to
  ``seq_len`` on its own), neutral = 0, contradiction = 1, entailment = 2: the same sequences, dense.

The registry datasets ``imdb`` and ``snli`` (:func:`text_dataset`, reached through
:func:`eqbench.data.load_dataset`) use the authors' settings: IMDB 600 tokens, SNLI 25 + 25 tokens of the
first 540,000 train / 10,000 test rows; the word2vec file is ``data_dir/GoogleNews-vectors-negative300.bin``
(or ``.bin.gz``, or ``data.embeddings``), never downloaded; ``download=True`` fetches the Stanford archive;
the first load caches the indices and the matrix in ``data_dir/eqbench_cache`` (:func:`cache_file`).

Deviations from the authors' code, on purpose:

* **IMDB source.** The authors decode ``keras.datasets.imdb`` (already lowercased, punctuation-free word
  indices, ``<br />`` left as ``br`` words). eqbench reads the raw standard Stanford files
  ``aclImdb/{train,test}/{neg,pos}/*.txt`` instead and applies the same cleaning, so ``<br />`` tags are removed
  rather than kept as ``br`` tokens. Tags are replaced by a space (BeautifulSoup's ``get_text`` joins
  ``end.<br />Next`` into ``end.Next``), and HTML entities are unescaped (as ``get_text`` does).
* **Character class.** The authors' regex is ``[^a-zA-z0-9.!?,\\s]``, whose ``A-z`` range also keeps
  ``[ \\ ] ^ _ ` ``; that is a typo, not science, so eqbench uses ``A-Z``.
* **Toktok.** The authors call nltk's ``ToktokTokenizer``; eqbench re-implements it for the only characters
  left after the cleaning (letters, digits, whitespace, ``. ! ? ,``): split on whitespace, and ``.``, ``!``,
  ``?``, ``,`` become tokens of their own; a run of dots (``...``) or of commas stays one token, as in Toktok,
  and so does a number with inner separators (``3.5``, ``1,000``). Real Toktok splits a period off only at
  the very end of the text and ``?`` only before whitespace, so on raw text it would yield ``film.`` (then
  out of vocabulary, so the word would be dropped) where the authors' punctuation-free keras text gave
  ``film``; splitting every period keeps the word, which is what their input contained.
* **SNLI source.** The authors read a CSV conversion that they do not provide; eqbench reads the standard
  ``snli_1.0/snli_1.0_{train,test}.jsonl`` (or the tab-separated ``.txt`` with its header). ``limit`` keeps
  the first N data rows of the file before rows with another gold label (``"-"``) are skipped; the authors
  used 540,000 train and 10,000 test rows.

Missing files raise :class:`~eqbench.errors.DatasetMissingError` with one line naming the folder and the
expected files; bad arguments and malformed files raise :class:`~eqbench.errors.ConfigError` naming the file
and the line or word.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import json
import os
import pickle
import re
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DatasetMissingError
from .info import DATASET_INFO, SPLITS

IMDB_LABELS: dict[str, int] = {"neg": 0, "pos": 1}
SNLI_LABELS: dict[str, int] = {"neutral": 0, "contradiction": 1, "entailment": 2}
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
SNLI_URL = "https://nlp.stanford.edu/projects/snli/snli_1.0.zip"

_CHUNK = 1 << 20  # bytes read at a time from a binary word2vec file

# ----------------------------------------------------------------------------------------------------- tokenising

_HTML_TAG = re.compile(r"<[^>]*>")
_BRACKETS = re.compile(r"\[[^]]*\]")  # the authors' remove_between_square_brackets
_IMDB_OUTSIDE = re.compile(r"[^a-zA-Z0-9.!?,\s]")  # authors: [^a-zA-z0-9.!?,\s] (A-z typo, see module doc)
_IMDB_TOKEN = re.compile(r"\d+(?:[.,]\d+)+|\.{2,}|,{2,}|[.!?,]|[^\s.!?,]+")
_SNLI_PUNCT = re.compile(r"([.?!])")
_SNLI_OUTSIDE = re.compile(r"[^a-zA-Z0-9.?!\s]")


def clean_imdb(text: str) -> str:
    """A review with HTML tags (replaced by a space) and ``[...]`` removed, entities unescaped, and the
    characters outside ``[a-zA-Z0-9.!?,\\s]`` deleted; case is kept."""
    text = html.unescape(_HTML_TAG.sub(" ", text))
    text = _BRACKETS.sub("", text)
    return _IMDB_OUTSIDE.sub("", text)


def toktok(text: str) -> list[str]:
    """nltk's ToktokTokenizer re-implemented for text made only of letters, digits, whitespace and ``.!?,``
    (what :func:`clean_imdb` leaves): whitespace separates tokens, and ``.``, ``!``, ``?``, ``,`` are tokens
    of their own, except that ``...`` (a run of dots), ``,,`` (a run of commas) and a number with inner
    separators (``3.5``, ``1,000``) stay whole. See the module doc for where it differs from nltk."""
    return _IMDB_TOKEN.findall(text)


def tokenize_imdb(text: str) -> list[str]:
    """The authors' IMDB preprocessing: :func:`clean_imdb`, :func:`toktok`, lowercase."""
    return [t.lower() for t in toktok(clean_imdb(text))]


def tokenize_snli(text: str) -> list[str]:
    """The authors' SNLI preprocessing: ``.``, ``?``, ``!`` spaced out, other non-alphanumeric characters
    deleted (whitespace kept), lowercased, split on whitespace."""
    text = _SNLI_PUNCT.sub(r" \1 ", text)
    return _SNLI_OUTSIDE.sub("", text).lower().split()


# ------------------------------------------------------------------------------------------------------- word2vec


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _is_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def _looks_binary(path: Path, f) -> bool:
    """Whether the file is in the binary form: by extension (``.bin``, ``.txt``, ``.vec``, before ``.gz``),
    else by trying to read the first vector line as text (a word, then numbers separated by spaces)."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    if name.endswith(".bin"):
        return True
    if name.endswith((".txt", ".vec")):
        return False
    pos = f.tell()
    line = f.readline(1 << 20)
    f.seek(pos)
    if not line:
        return False
    try:
        parts = line.decode("utf-8").rstrip().split(" ")
    except UnicodeDecodeError:
        return True
    return not (len(parts) >= 2 and all(_is_float(p) for p in parts[1:]))


def _read_header(path: Path, f) -> tuple[int, int]:
    raw = f.readline(1 << 16)
    try:
        fields = raw.decode("utf-8").split()
        count, dim = (int(x) for x in fields)
        if count < 0 or dim < 1:
            raise ValueError
    except (UnicodeDecodeError, ValueError):
        shown = raw[:60].decode("utf-8", "replace").strip()
        raise ConfigError(f"{path}: line 1: malformed word2vec header {shown!r}; expected 'count dim' "
                          f"(two integers, dim >= 1)") from None
    return count, dim


def _read_text(path: Path, f, count: int, dim: int, vocab) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for i in range(count):
        lineno = i + 2
        raw = f.readline()
        if not raw:
            raise ConfigError(f"{path}: ends at line {lineno} after {i} vectors, but the header says {count}")
        try:
            line = raw.decode("utf-8").rstrip()
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: line {lineno} is not valid UTF-8 (is this really the text form?)") from None
        word, _, rest = line.partition(" ")
        n = rest.count(" ") + 1 if rest else 0
        if n != dim:
            raise ConfigError(f"{path}: line {lineno}: word {word!r} has {n} values, expected {dim}")
        if (vocab is None or word in vocab) and word not in out:
            try:
                out[word] = np.array([float(v) for v in rest.split(" ")], dtype=np.float32)
            except ValueError:
                raise ConfigError(f"{path}: line {lineno}: word {word!r} has a value that is not a number") from None
    return out


def _read_binary(path: Path, f, count: int, dim: int, vocab) -> dict[str, np.ndarray]:
    nbytes = 4 * dim
    out: dict[str, np.ndarray] = {}
    buf, start, eof, i = b"", 0, False, 0
    while i < count:
        space = buf.find(b" ", start)
        if space == -1 or len(buf) - space - 1 < nbytes:
            if eof:
                left = buf[start:].lstrip(b"\n")
                if not left:
                    raise ConfigError(f"{path}: holds {i} vectors, but the header says {count}")
                word = left.split(b" ", 1)[0].decode("utf-8", "replace")
                have = max(len(buf) - space - 1, 0) if space != -1 else 0
                raise ConfigError(f"{path}: word #{i + 1} {word!r}: the file ends after {have} of the {nbytes} "
                                  f"bytes of its vector ({dim} float32)")
            chunk = f.read(_CHUNK)
            eof = not chunk
            buf, start = buf[start:] + chunk, 0
            continue
        try:
            word = buf[start:space].decode("utf-8").lstrip("\n")
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: word #{i + 1} is not valid UTF-8 (a vector before it may have the wrong "
                              f"length, or the file is not word2vec binary with dim {dim})") from None
        if (vocab is None or word in vocab) and word not in out:
            out[word] = np.frombuffer(buf, dtype="<f4", count=dim, offset=space + 1).astype(np.float32)
        start = space + 1 + nbytes
        i += 1
    return out


def _word2vec(path, vocab: Iterable[str] | None = None,
              binary: bool | None = None) -> tuple[dict[str, np.ndarray], int]:
    path = Path(path)
    if not path.is_file():
        raise DatasetMissingError(f"word2vec embeddings not found: {path} is not a file; expected a word2vec file "
                                  f"there (text, or binary .bin / .bin.gz such as "
                                  f"GoogleNews-vectors-negative300.bin.gz)")
    keep = None if vocab is None else set(vocab)
    try:
        with _open(path) as f:
            count, dim = _read_header(path, f)
            if binary is None:
                binary = _looks_binary(path, f)
            read = _read_binary if binary else _read_text
            return read(path, f, count, dim, keep), dim
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise ConfigError(f"{path}: unreadable word2vec file ({type(e).__name__}: {e})") from e


def load_word2vec(path, vocab: set[str] | None = None, binary: bool | None = None) -> dict[str, np.ndarray]:
    """The vectors of a word2vec file as ``{word: float32 array (dim,)}``, read as gensim's
    ``KeyedVectors.load_word2vec_format`` reads them (see the module doc for the two forms).

    ``vocab``: keep only these words. ``binary``: the form; None detects it from the extension (``.bin``,
    or ``.txt`` / ``.vec``, before an optional ``.gz``), else by trying to parse the first vector as text.
    A missing file raises DatasetMissingError; a malformed header, a vector of the wrong length or a file
    shorter than its header says raises ConfigError naming the file and the line or word.
    """
    return _word2vec(path, vocab, binary)[0]


# ------------------------------------------------------------------------------------------- token indices, embed

PAD = 0  # the token index of padding: row 0 of every embedding matrix is a zero vector


def _token_ids(tokens: Sequence[str], vectors: dict[str, np.ndarray], seq_len: int,
               index: dict[str, int]) -> list[int]:
    """The indices of the first ``seq_len`` in-vocabulary ``tokens`` (out-of-vocabulary tokens are dropped,
    not zero vectors, as Bal & Sengupta 2023 do), numbering each word new to ``index`` len(index) + 1."""
    return [index.setdefault(t, len(index) + 1) for t in [t for t in tokens if t in vectors][:seq_len]]


def _matrix(index: dict[str, int], vectors: dict[str, np.ndarray], dim: int) -> torch.Tensor:
    """The (len(index) + 1, dim) float32 embedding matrix of ``index``: row PAD zeros, row i the vector of the
    word numbered i."""
    out = torch.zeros(len(index) + 1, dim, dtype=torch.float32)
    for word, i in index.items():
        v = np.asarray(vectors[word], dtype=np.float32)
        if v.shape != (dim,):
            raise ConfigError(f"embed: token {word!r} has a vector of shape {v.shape}, expected ({dim},)")
        out[i] = torch.from_numpy(v)
    return out


def embed(tokens: Sequence[str], vectors: dict[str, np.ndarray], seq_len: int, dim: int) -> torch.Tensor:
    """The (seq_len, dim) float32 sequence of ``tokens``: out-of-vocabulary tokens dropped, then the first
    ``seq_len`` kept, zero vectors appended up to ``seq_len`` (Bal & Sengupta 2023)."""
    if seq_len < 1 or dim < 1:
        raise ConfigError(f"seq_len and dim must be >= 1, got seq_len={seq_len}, dim={dim}")
    index: dict[str, int] = {}
    ids = _token_ids(tokens, vectors, seq_len, index)
    return _matrix(index, vectors, dim)[torch.tensor(ids + [PAD] * (seq_len - len(ids)), dtype=torch.long)]


class TokenSequences(Dataset):
    """Word2vec sequences stored as token indices and embedded on access, yielding ``(x, y)``: x (L, d)
    float32, y a 0-d int64.

    ``tokens`` (N, L) int32 (or int64) indexes the rows of ``vectors`` (V + 1, d) float32, whose row
    :data:`PAD` (0) is a zero vector (the padding) and whose other rows are the vectors of the V words the
    split uses; ``labels`` (N,) int64. A full split embedded densely would not fit in memory (IMDB train:
    25,000 × 600 × 300 float32 = 18 GB); as indices it takes 60 MB plus one matrix. ``ds[i]`` is
    ``(vectors[tokens[i]], labels[i])`` and :meth:`dense` gives all of them at once. Inconsistent tensors
    raise ConfigError.
    """

    def __init__(self, tokens: torch.Tensor, vectors: torch.Tensor, labels: torch.Tensor) -> None:
        if tokens.ndim != 2 or tokens.dtype not in (torch.int32, torch.int64):
            raise ConfigError(f"tokens must be an (N, L) int32 or int64 tensor, got {tokens.dtype} "
                              f"{tuple(tokens.shape)}")
        if vectors.ndim != 2 or vectors.dtype != torch.float32 or len(vectors) < 1 or bool(vectors[PAD].any()):
            raise ConfigError(f"vectors must be a (V + 1, d) float32 tensor whose row {PAD} is zeros, got "
                              f"{vectors.dtype} {tuple(vectors.shape)}")
        if labels.dtype != torch.int64 or tuple(labels.shape) != (len(tokens),):
            raise ConfigError(f"labels must be an ({len(tokens)},) int64 tensor, got {labels.dtype} "
                              f"{tuple(labels.shape)}")
        if tokens.numel() and not 0 <= int(tokens.min()) <= int(tokens.max()) < len(vectors):
            raise ConfigError(f"token indices must lie in [0, {len(vectors)}), got [{int(tokens.min())}, "
                              f"{int(tokens.max())}]")
        self.tokens, self.vectors, self.labels = tokens, vectors, labels

    def __len__(self) -> int:
        return len(self.tokens)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.vectors.index_select(0, self.tokens[i]), self.labels[i]

    def dense(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every sequence embedded: (x (N, L, d) float32, y (N,) int64)."""
        return self.vectors[self.tokens.long()], self.labels


def _sequences(examples: Sequence[tuple[list[str], ...]], labels: Sequence[int], embeddings_path,
               seq_len: int, segments: int) -> TokenSequences:
    """``examples`` of ``segments`` token lists each as :class:`TokenSequences`: each segment cut or padded to
    ``seq_len`` on its own (:func:`embed`'s rule), then the segments concatenated (L = segments · seq_len).
    Only the vectors of the tokens of ``examples`` are read from ``embeddings_path``."""
    vectors, dim = _word2vec(embeddings_path, {t for ex in examples for seg in ex for t in seg})
    index: dict[str, int] = {}
    tokens = np.full((len(examples), segments * seq_len), PAD, dtype=np.int32)
    for row, ex in zip(tokens, examples):
        for s, seg in enumerate(ex):
            ids = _token_ids(seg, vectors, seq_len, index)
            row[s * seq_len:s * seq_len + len(ids)] = ids
    return TokenSequences(torch.from_numpy(tokens), _matrix(index, vectors, dim),
                          torch.tensor(list(labels), dtype=torch.int64))


def _check_split(split: str, seq_len: int = 1) -> None:
    if seq_len < 1:
        raise ConfigError(f"seq_len must be >= 1, got {seq_len}")
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")


# ----------------------------------------------------------------------------------------------------------- IMDB


def imdb_files(data_dir, split: str = "train") -> list[tuple[Path, int]]:
    """(file, label) of one IMDB split, neg (0) then pos (1), each in sorted file-name order."""
    _check_split(split)
    root = Path(data_dir) / "aclImdb" / split
    found = {c: sorted((root / c).glob("*.txt")) if (root / c).is_dir() else [] for c in IMDB_LABELS}
    missing = [f"{c}/*.txt" for c, files in found.items() if not files]
    if missing:
        raise DatasetMissingError(f"IMDB not found: {root} lacks {', '.join(missing)} (the standard Stanford layout "
                                  f"aclImdb/{{train,test}}/{{neg,pos}}/*.txt); unpack {IMDB_URL} into {data_dir}")
    return [(p, IMDB_LABELS[c]) for c, files in found.items() for p in files]


def imdb_sequences(data_dir, embeddings_path, seq_len: int = 600, split: str = "train") -> TokenSequences:
    """One IMDB split read from ``data_dir/aclImdb/{split}/{neg,pos}/*.txt`` as :class:`TokenSequences`
    (:func:`tokenize_imdb`, then the first ``seq_len`` in-vocabulary tokens, zero-padded), labels neg = 0,
    pos = 1, in the order of :func:`imdb_files`. The authors decode keras' pre-tokenised imdb; eqbench reads
    the raw standard files and applies the same cleaning (see the module doc)."""
    _check_split(split, seq_len)
    files = imdb_files(data_dir, split)
    examples = [(tokenize_imdb(p.read_text(encoding="utf-8", errors="replace")),) for p, _ in files]
    return _sequences(examples, [label for _, label in files], embeddings_path, seq_len, 1)


def load_imdb(data_dir, embeddings_path, seq_len: int = 600, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """One IMDB split as dense ``(x, y)``: x (N, seq_len, dim) float32 word2vec sequences, y (N,) int64;
    :func:`imdb_sequences` embedded (:meth:`TokenSequences.dense`). Mind the memory: 18 GB for a full split."""
    return imdb_sequences(data_dir, embeddings_path, seq_len, split).dense()


# ----------------------------------------------------------------------------------------------------------- SNLI


def snli_file(data_dir, split: str = "train") -> Path:
    """The SNLI file of ``split``: ``data_dir/snli_1.0/snli_1.0_{split}.jsonl``, else the ``.txt`` beside it."""
    _check_split(split)
    folder = Path(data_dir) / "snli_1.0"
    for ext in ("jsonl", "txt"):
        if (folder / f"snli_1.0_{split}.{ext}").is_file():
            return folder / f"snli_1.0_{split}.{ext}"
    raise DatasetMissingError(f"SNLI not found: {folder} lacks snli_1.0_{split}.jsonl (or snli_1.0_{split}.txt); "
                              f"unpack {SNLI_URL} into {data_dir}")


def snli_rows(path, limit: int | None = None) -> list[tuple[str, str, str]]:
    """(gold_label, sentence1, sentence2) of the first ``limit`` data rows of an SNLI ``.jsonl`` or
    tab-separated ``.txt`` file (with its header line), all labels included."""
    path = Path(path)
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be >= 0 or None, got {limit}")
    rows: list[tuple[str, str, str]] = []
    fields = ("gold_label", "sentence1", "sentence2")
    with open(path, encoding="utf-8") as f:
        if path.suffix == ".jsonl":
            for lineno, line in enumerate(f, start=1):
                if limit is not None and len(rows) >= limit:
                    break
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                    rows.append(tuple(str(d[k]) for k in fields))
                except json.JSONDecodeError as e:
                    raise ConfigError(f"{path}: line {lineno}: not JSON ({e.msg})") from None
                except (KeyError, TypeError):
                    raise ConfigError(f"{path}: line {lineno}: a JSON object with fields {', '.join(fields)} "
                                      f"expected") from None
        else:
            header = f.readline().rstrip("\r\n").split("\t")
            if not all(k in header for k in fields):
                raise ConfigError(f"{path}: line 1: header lacks column(s) "
                                  f"{', '.join(k for k in fields if k not in header)}")
            cols = [header.index(k) for k in fields]
            for lineno, line in enumerate(f, start=2):
                if limit is not None and len(rows) >= limit:
                    break
                if not line.strip():
                    continue
                parts = line.rstrip("\r\n").split("\t")
                if len(parts) <= max(cols):
                    raise ConfigError(f"{path}: line {lineno}: {len(parts)} tab-separated columns, the header has "
                                      f"{len(header)}")
                rows.append(tuple(parts[c] for c in cols))
    return rows


def snli_sequences(data_dir, embeddings_path, seq_len: int = 25, split: str = "train",
                   limit: int | None = None) -> TokenSequences:
    """One SNLI split (:func:`snli_file`) as :class:`TokenSequences` of length 2·seq_len: the premise's
    sequence then the hypothesis's, each :func:`tokenize_snli`, cut or zero-padded to ``seq_len`` on its own;
    labels neutral = 0, contradiction = 1, entailment = 2. ``limit`` keeps the first ``limit`` rows of the
    file; rows with another gold label (``"-"``) are then skipped."""
    _check_split(split, seq_len)
    rows = [r for r in snli_rows(snli_file(data_dir, split), limit) if r[0] in SNLI_LABELS]
    examples = [(tokenize_snli(s1), tokenize_snli(s2)) for _, s1, s2 in rows]
    return _sequences(examples, [SNLI_LABELS[r[0]] for r in rows], embeddings_path, seq_len, 2)


def load_snli(data_dir, embeddings_path, seq_len: int = 25, split: str = "train",
              limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One SNLI split as dense ``(x, y)``: x (N, 2·seq_len, dim) float32, y (N,) int64; :func:`snli_sequences`
    embedded (:meth:`TokenSequences.dense`)."""
    return snli_sequences(data_dir, embeddings_path, seq_len, split, limit).dense()


# ------------------------------------------------------------------------------------------ the registry datasets

TEXT: tuple[str, ...] = ("imdb", "snli")
# Bal & Sengupta (2023, README): IMDB seqLen 600; SNLI 25 tokens per sentence. The registry's in_shape says so.
SEQ_LEN: dict[str, int] = {"imdb": DATASET_INFO["imdb"].in_shape[0], "snli": DATASET_INFO["snli"].in_shape[0] // 2}
# Bal & Sengupta (2023) read the first 540,000 train and 10,000 test rows of SNLI.
SNLI_LIMITS: dict[str, int] = {"train": 540_000, "test": 10_000}
# the archives' md5, as torchtext's IMDB and SNLI check them
IMDB_MD5 = "7c2ac02c03563afcf9b574c7e56c153a"
SNLI_MD5 = "981c3df556bbaea3f17f752456d0088c"
WORD2VEC_FILE = "GoogleNews-vectors-negative300.bin"
WORD2VEC_URL = "https://code.google.com/archive/p/word2vec/"
CACHE_DIR = "eqbench_cache"
_CACHE_VERSION = 1  # bump when the preprocessing changes, so that older caches are not read


def embeddings_file(data_dir: Path, embeddings: str | Path | None = None) -> Path:
    """The word2vec file: ``embeddings`` (relative to ``data_dir`` unless absolute), else
    ``data_dir/GoogleNews-vectors-negative300.bin``, else the ``.bin.gz`` beside it. eqbench never downloads
    it; a missing file raises DatasetMissingError saying where to get one."""
    where = (f"a 300-d word2vec file (the Google News vectors {WORD2VEC_FILE}[.gz] from {WORD2VEC_URL}, also "
             f"gensim-data's word2vec-google-news-300); eqbench does not download it")
    if embeddings is None:
        path = data_dir / WORD2VEC_FILE
        if not path.is_file() and (data_dir / f"{WORD2VEC_FILE}.gz").is_file():
            path = data_dir / f"{WORD2VEC_FILE}.gz"
        if not path.is_file():
            raise DatasetMissingError(f"word2vec embeddings not found: {data_dir} lacks {WORD2VEC_FILE} (or "
                                      f"{WORD2VEC_FILE}.gz); put {where}, or set data.embeddings to its path")
        return path
    path = Path(embeddings).expanduser()
    path = path if path.is_absolute() else data_dir / path
    if not path.is_file():
        raise DatasetMissingError(f"word2vec embeddings not found: {path} (data.embeddings, relative to {data_dir}) "
                                  f"is not a file; put {where}")
    return path


def _one_line(e: BaseException) -> str:
    """``Type: first line of the message``, for one-line errors and warnings."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _download(name: str, data_dir: Path) -> None:
    """Fetch and unpack the archive of ``name`` into ``data_dir`` (torchvision's downloader, md5 checked)."""
    url, md5 = (IMDB_URL, IMDB_MD5) if name == "imdb" else (SNLI_URL, SNLI_MD5)
    try:
        # lazy: torchvision only when a corpus is downloaded
        from torchvision.datasets.utils import download_and_extract_archive
    except ImportError as e:
        raise ConfigError(f"downloading {name!r} needs torchvision: pip install 'eqbench[data]', or unpack {url} "
                          f"into {data_dir} by hand") from e
    try:
        download_and_extract_archive(url, download_root=data_dir, md5=md5)
    # urllib's errors are OSErrors; torchvision reports a bad md5 as RuntimeError, a bad archive as ValueError
    except (OSError, RuntimeError, ValueError, EOFError) as e:
        raise DatasetMissingError(f"dataset {name!r} could not be downloaded into {data_dir} ({_one_line(e)}); "
                                  f"unpack {url} there by hand") from e


def _find(name: str, split: str, data_dir: Path, download: bool) -> None:
    """Check that the files of one split are there; fetch them first when ``download`` and they are not."""
    find = imdb_files if name == "imdb" else snli_file
    try:
        find(data_dir, split)
        return
    except DatasetMissingError as e:
        if not download:
            raise DatasetMissingError(f"{e}, or pass --download (download=True) to fetch it") from None
    _download(name, data_dir)
    find(data_dir, split)


def cache_file(name: str, split: str, data_dir: Path, embeddings_path: Path, seq_len: int,
               limit: int | None) -> Path:
    """``data_dir/eqbench_cache/{name}_{split}_L{seq_len}_{hash}.pt``, the hash covering the embeddings file
    (resolved path, size, mtime), ``limit`` and the cache format: another embeddings file gives another cache."""
    st = embeddings_path.stat()
    key = json.dumps([_CACHE_VERSION, str(embeddings_path.resolve()), st.st_size, st.st_mtime_ns, limit])
    return data_dir / CACHE_DIR / f"{name}_{split}_L{seq_len}_{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def _read_cache(path: Path) -> TokenSequences | None:
    """The cached split, or None when there is none; an unreadable one is ignored with a warning."""
    if not path.is_file():
        return None
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
        return TokenSequences(d["tokens"], d["vectors"], d["labels"])
    # a cache is disposable: whatever makes it unreadable (truncated zip, foreign pickle, wrong content), rebuild
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError, KeyError, TypeError, ValueError,
            AttributeError, IndexError) as e:
        warnings.warn(f"ignoring the unreadable cache {path} ({_one_line(e)}); rebuilding it", stacklevel=2)
        return None


def _write_cache(path: Path, ds: TokenSequences) -> None:
    """Save ``ds`` to ``path`` atomically (a temporary file in the same folder, then os.replace), so that an
    interrupted write never leaves a partial cache under the final name. A folder that cannot be written is
    only a warning: the data was read, the next load will read the embeddings again."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            torch.save({"tokens": ds.tokens, "vectors": ds.vectors, "labels": ds.labels}, f)
        os.replace(tmp, path)
        tmp = None
    except (OSError, RuntimeError) as e:  # torch's writer reports a full disk as RuntimeError
        warnings.warn(f"could not write the cache {path} ({_one_line(e)}); the next load reads the embeddings "
                      "again", stacklevel=2)
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def text_dataset(name: str, split: str, data_dir: Path, embeddings: str | Path | None = None,
                 download: bool = False) -> TokenSequences:
    """One split of the registry dataset ``imdb`` or ``snli``, preprocessed as Bal & Sengupta (2023), as
    :class:`TokenSequences` of x (L, 300) float32, y 0-d int64.

    * ``imdb``: ``data_dir/aclImdb/{split}/{neg,pos}/*.txt`` (:func:`imdb_sequences`), L = 600;
    * ``snli``: ``data_dir/snli_1.0/snli_1.0_{split}.jsonl`` (or ``.txt``) (:func:`snli_sequences`), premise 25
      then hypothesis 25 tokens, L = 50. As the authors, only the first 540,000 train / 10,000 test rows of
      the file are read (:data:`SNLI_LIMITS`), then the rows whose gold label is none of the three are
      skipped.

    ``embeddings``: the word2vec file (:func:`embeddings_file`); it must hold 300-d vectors. ``download``:
    fetch the Stanford archive (:data:`IMDB_URL`, :data:`SNLI_URL`) into ``data_dir`` when the split's files
    are missing; the embeddings are never downloaded.

    Reading the 3.6 GB Google News file takes minutes, so the first load saves the indices, the embedding
    matrix and the labels to :func:`cache_file` (in ``data_dir/eqbench_cache``) and later loads read that
    instead of the embeddings; a new embeddings file (path, size or mtime) gives a new cache, and an
    unreadable cache is rebuilt with a warning. The dataset files are still required (and checked) when the
    cache is read, but the cache does not track their content: delete it after changing them.
    """
    if name not in TEXT:
        raise ConfigError(f"unknown text dataset {name!r}; known: {', '.join(TEXT)}")
    _check_split(split)
    data_dir = Path(data_dir)
    _find(name, split, data_dir, download)
    path = embeddings_file(data_dir, embeddings)
    seq_len, limit = SEQ_LEN[name], (SNLI_LIMITS[split] if name == "snli" else None)
    cache = cache_file(name, split, data_dir, path, seq_len, limit)
    ds = _read_cache(cache)
    if ds is None:
        ds = (imdb_sequences(data_dir, path, seq_len, split) if name == "imdb"
              else snli_sequences(data_dir, path, seq_len, split, limit))
        want = DATASET_INFO[name].in_shape[-1]
        if ds.vectors.shape[1] != want:
            raise ConfigError(f"{path} holds {ds.vectors.shape[1]}-d vectors, but dataset {name!r} expects {want}-d "
                              f"(in_shape {DATASET_INFO[name].in_shape}); use a 300-d word2vec file")
        _write_cache(cache, ds)
    return ds
