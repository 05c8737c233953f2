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
* :func:`load_imdb` gives ``(x (N, seq_len, dim) float32, y (N,) int64)``, pos = 1, neg = 0;
  :func:`load_snli` gives ``(x (N, 2·seq_len, dim), y)`` with premise then hypothesis, neutral = 0,
  contradiction = 1, entailment = 2. Both loaders tokenise the split first and read only the vectors of its
  vocabulary. The full splits are large in memory: IMDB 25,000 × 600 × 300 float32 = 18 GB per split, SNLI
  540,000 × 50 × 300 = 32 GB (``limit`` reduces it).

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
import html
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DatasetMissingError
from .info import SPLITS

IMDB_LABELS: dict[str, int] = {"neg": 0, "pos": 1}
SNLI_LABELS: dict[str, int] = {"neutral": 0, "contradiction": 1, "entailment": 2}
IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
SNLI_URL = "https://nlp.stanford.edu/projects/snli/snli_1.0.zip"

_CHUNK = 1 << 20  # bytes read at a time from a binary word2vec file

# --------------------------------------------------------------------------------------------------- tokenising

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


def embed(tokens: Sequence[str], vectors: dict[str, np.ndarray], seq_len: int, dim: int) -> torch.Tensor:
    """The (seq_len, dim) float32 sequence of ``tokens``: out-of-vocabulary tokens dropped, then the first
    ``seq_len`` kept, zero vectors appended up to ``seq_len``."""
    if seq_len < 1 or dim < 1:
        raise ConfigError(f"seq_len and dim must be >= 1, got seq_len={seq_len}, dim={dim}")
    out = torch.zeros(seq_len, dim, dtype=torch.float32)
    kept = [t for t in tokens if t in vectors][:seq_len]
    for i, t in enumerate(kept):
        v = np.asarray(vectors[t], dtype=np.float32)
        if v.shape != (dim,):
            raise ConfigError(f"embed: token {t!r} has a vector of shape {v.shape}, expected ({dim},)")
        out[i] = torch.from_numpy(v)
    return out


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


def load_imdb(data_dir, embeddings_path, seq_len: int = 600, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """One IMDB split read from ``data_dir/aclImdb/{split}/{neg,pos}/*.txt`` as ``(x, y)``:
    x (N, seq_len, dim) float32 word2vec sequences (:func:`tokenize_imdb`, :func:`embed`), y (N,) int64 with
    neg = 0, pos = 1, in the order of :func:`imdb_files`. The authors decode keras' pre-tokenised imdb;
    eqbench reads the raw standard files and applies the same cleaning (see the module doc)."""
    _check_split(split, seq_len)
    files = imdb_files(data_dir, split)
    tokens = [tokenize_imdb(p.read_text(encoding="utf-8", errors="replace")) for p, _ in files]
    vectors, dim = _word2vec(embeddings_path, {t for ts in tokens for t in ts})
    x = torch.zeros(len(files), seq_len, dim, dtype=torch.float32)
    for i, ts in enumerate(tokens):
        x[i] = embed(ts, vectors, seq_len, dim)
    return x, torch.tensor([label for _, label in files], dtype=torch.int64)


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


def load_snli(data_dir, embeddings_path, seq_len: int = 25, split: str = "train",
              limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """One SNLI split (:func:`snli_file`) as ``(x, y)``: x (N, 2·seq_len, dim) float32, the premise's
    sequence then the hypothesis's (each :func:`tokenize_snli`, :func:`embed`); y (N,) int64 with neutral = 0,
    contradiction = 1, entailment = 2. ``limit`` keeps the first ``limit`` rows of the file; rows with another
    gold label (``"-"``) are then skipped."""
    _check_split(split, seq_len)
    rows = [r for r in snli_rows(snli_file(data_dir, split), limit) if r[0] in SNLI_LABELS]
    tokens = [(tokenize_snli(s1), tokenize_snli(s2)) for _, s1, s2 in rows]
    vectors, dim = _word2vec(embeddings_path, {t for pair in tokens for ts in pair for t in ts})
    x = torch.zeros(len(rows), 2 * seq_len, dim, dtype=torch.float32)
    for i, (premise, hypothesis) in enumerate(tokens):
        x[i, :seq_len] = embed(premise, vectors, seq_len, dim)
        x[i, seq_len:] = embed(hypothesis, vectors, seq_len, dim)
    return x, torch.tensor([SNLI_LABELS[r[0]] for r in rows], dtype=torch.int64)
