"""IMDB / SNLI with word2vec (eqbench.data.text): tiny files in the real formats written into tmp_path; the word2vec
reader (text, binary, gzip), the authors' tokenisation, OOV dropping, padding, truncation, labels, and errors."""

from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from eqbench.data.text import (
    embed,
    imdb_files,
    load_imdb,
    load_snli,
    load_word2vec,
    snli_rows,
    tokenize_imdb,
    tokenize_snli,
    toktok,
)
from eqbench.errors import ConfigError, DatasetMissingError

DIM = 4
# a float32 whose little-endian bytes are b" \n \x3f": a space and a newline inside a binary vector
TRICKY = float(np.frombuffer(b" \n \x3f", dtype="<f4")[0])
VECTORS = {
    "good": [1.0, 0.5, -0.25, 2.0],
    "bad": [-1.0, -0.5, 0.25, -2.0],
    "film": [0.0, 1.0, 0.0, TRICKY],
    ".": [0.125, 0.125, 0.125, 0.125],
    "plot": [3.0, -3.0, 1.5, -1.5],
}


def write_text(path: Path, vectors=VECTORS, header: str | None = None) -> Path:
    lines = [header if header is not None else f"{len(vectors)} {DIM}"]
    lines += [w + " " + " ".join(repr(float(v)) for v in vec) for w, vec in vectors.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def binary_bytes(vectors=VECTORS, newline: bool = True) -> bytes:
    out = f"{len(vectors)} {DIM}\n".encode()
    for w, vec in vectors.items():
        out += w.encode() + b" " + struct.pack(f"<{len(vec)}f", *vec) + (b"\n" if newline else b"")
    return out


def write_binary(path: Path, vectors=VECTORS, newline: bool = True) -> Path:
    path.write_bytes(binary_bytes(vectors, newline))
    return path


def expected(word: str) -> np.ndarray:
    return np.array(VECTORS[word], dtype=np.float32)


# ------------------------------------------------------------------------------------------------------- word2vec


def test_text_form_exact_vectors(tmp_path):
    vecs = load_word2vec(write_text(tmp_path / "w.txt"))
    assert list(vecs) == list(VECTORS)
    for w in VECTORS:
        assert vecs[w].dtype == np.float32 and vecs[w].shape == (DIM,)
        np.testing.assert_array_equal(vecs[w], expected(w))


@pytest.mark.parametrize("newline", [True, False])
def test_binary_equals_text(tmp_path, newline):
    text = load_word2vec(write_text(tmp_path / "w.txt"))
    binary = load_word2vec(write_binary(tmp_path / "w.bin", newline=newline))
    assert list(binary) == list(text)
    for w in text:
        np.testing.assert_array_equal(binary[w], text[w])
    assert binary["film"][3] == np.float32(TRICKY)


def test_form_detected_without_extension_and_gzip(tmp_path):
    text = load_word2vec(write_text(tmp_path / "w.vectors"))
    binary = load_word2vec(write_binary(tmp_path / "w.vectors2"))
    gz = tmp_path / "w.bin.gz"
    gz.write_bytes(gzip.compress(binary_bytes()))
    zipped = load_word2vec(gz)
    for w in VECTORS:
        np.testing.assert_array_equal(text[w], expected(w))
        np.testing.assert_array_equal(binary[w], expected(w))
        np.testing.assert_array_equal(zipped[w], expected(w))


def test_vocab_filter(tmp_path):
    for path in (write_text(tmp_path / "w.txt"), write_binary(tmp_path / "w.bin")):
        vecs = load_word2vec(path, vocab={"film", "plot", "absent"})
        assert sorted(vecs) == ["film", "plot"]
        np.testing.assert_array_equal(vecs["plot"], expected("plot"))


def test_duplicate_word_keeps_first(tmp_path):
    path = tmp_path / "dup.txt"
    path.write_text(f"2 {DIM}\ngood 1 1 1 1\ngood 2 2 2 2\n", encoding="utf-8")
    np.testing.assert_array_equal(load_word2vec(path)["good"], np.ones(DIM, dtype=np.float32))


@pytest.mark.parametrize("header", ["5", "five 4", "5 4 3", "5 0", ""])
def test_malformed_header(tmp_path, header):
    path = write_text(tmp_path / "w.txt", header=header)
    with pytest.raises(ConfigError, match=r"w\.txt: line 1: malformed word2vec header"):
        load_word2vec(path)


def test_short_vector_text(tmp_path):
    path = tmp_path / "w.txt"
    path.write_text(f"2 {DIM}\ngood 1 2 3 4\nbad 1 2 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"w\.txt: line 3: word 'bad' has 3 values, expected 4"):
        load_word2vec(path)
    path.write_text(f"1 {DIM}\ngood 1 x 3 4\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 2: word 'good' has a value that is not a number"):
        load_word2vec(path)


def test_short_vector_binary_and_short_file(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(binary_bytes()[:-7])  # the last vector loses its "\n" and 6 of its 16 bytes
    with pytest.raises(ConfigError, match=r"w\.bin: word #5 'plot': the file ends after 10 of the 16 bytes"):
        load_word2vec(path)
    path.write_bytes(binary_bytes().replace(b"5 4", b"6 4", 1))
    with pytest.raises(ConfigError, match=r"w\.bin: holds 5 vectors, but the header says 6"):
        load_word2vec(path)
    txt = write_text(tmp_path / "w.txt", header=f"6 {DIM}")
    with pytest.raises(ConfigError, match=r"w\.txt: ends at line 7 after 5 vectors, but the header says 6"):
        load_word2vec(txt)


def test_missing_embeddings(tmp_path):
    with pytest.raises(DatasetMissingError, match=r"word2vec embeddings not found: .*nope\.bin is not a file"):
        load_word2vec(tmp_path / "nope.bin")


# ---------------------------------------------------------------------------------------------------- tokenising


@pytest.mark.parametrize("text, tokens", [
    ("Great film. Loved it!", ["great", "film", ".", "loved", "it", "!"]),
    ("Why?? Well,I don't know...", ["why", "?", "?", "well", ",", "i", "dont", "know", "..."]),
    ("It cost $1,000 for 3.5 hours, really", ["it", "cost", "1,000", "for", "3.5", "hours", ",", "really"]),
    ("A<br /><br />B [spoiler: dies] end", ["a", "b", "end"]),
    ("Tom &amp; Jerry_ ^caret^ `tick` \\slash\\ [x]", ["tom", "jerry", "caret", "tick", "slash"]),
    ("Café—naïve 10/10!!", ["cafnave", "1010", "!", "!"]),  # deleted, not replaced by a space
])
def test_tokenize_imdb(text, tokens):
    assert tokenize_imdb(text) == tokens


def test_toktok_keeps_case_and_runs():
    assert toktok("Hi,, THERE... ok.") == ["Hi", ",,", "THERE", "...", "ok", "."]


@pytest.mark.parametrize("text, tokens", [
    ("A man, in a blue shirt, is running.", ["a", "man", "in", "a", "blue", "shirt", "is", "running", "."]),
    ("Isn't it 2 o'clock?!", ["isnt", "it", "2", "oclock", "?", "!"]),
    ("well-dressed   (kids)...", ["welldressed", "kids", ".", ".", "."]),
])
def test_tokenize_snli(text, tokens):
    assert tokenize_snli(text) == tokens


# --------------------------------------------------------------------------------------------------------- embed


def test_embed_drops_oov_and_pads():
    vecs = {w: expected(w) for w in VECTORS}
    x = embed(["the", "good", "zzz", "film", "!"], vecs, seq_len=4, dim=DIM)
    assert x.dtype == torch.float32 and x.shape == (4, DIM)
    assert torch.equal(x[0], torch.from_numpy(expected("good")))
    assert torch.equal(x[1], torch.from_numpy(expected("film")))
    assert torch.equal(x[2:], torch.zeros(2, DIM))


def test_embed_truncates_after_dropping():
    vecs = {w: expected(w) for w in VECTORS}
    x = embed(["oov", "bad", "oov", "plot", "good", "film"], vecs, seq_len=2, dim=DIM)
    assert torch.equal(x, torch.from_numpy(np.stack([expected("bad"), expected("plot")])))
    assert torch.equal(embed([], vecs, 3, DIM), torch.zeros(3, DIM))
    with pytest.raises(ConfigError, match="seq_len"):
        embed(["good"], vecs, 0, DIM)
    with pytest.raises(ConfigError, match=r"token 'good' has a vector of shape \(4,\), expected \(3,\)"):
        embed(["good"], vecs, 2, 3)


# ---------------------------------------------------------------------------------------------------------- IMDB

REVIEWS = {
    "neg": {"1_2.txt": "Bad plot.<br /><br />Bad film [SPOILER] !", "0_1.txt": "Bad, bad, BAD."},
    "pos": {"3_9.txt": "Good film<br />good plot", "2_10.txt": "GOOD! [really bad] good..."},
}


def write_imdb(root: Path, split: str = "train") -> Path:
    for label, files in REVIEWS.items():
        folder = root / "aclImdb" / split / label
        folder.mkdir(parents=True)
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
    return root


def test_imdb_files_order(tmp_path):
    files = imdb_files(write_imdb(tmp_path), "train")
    assert [(p.parent.name, p.name, y) for p, y in files] == [
        ("neg", "0_1.txt", 0), ("neg", "1_2.txt", 0), ("pos", "2_10.txt", 1), ("pos", "3_9.txt", 1)]


def test_load_imdb(tmp_path):
    write_imdb(tmp_path, "test")
    x, y = load_imdb(tmp_path, write_binary(tmp_path / "w.bin"), seq_len=5, split="test")
    assert x.shape == (4, 5, DIM) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.tolist() == [0, 0, 1, 1]
    v = {w: torch.from_numpy(expected(w)) for w in VECTORS}
    z = torch.zeros(DIM)
    # "bad , bad , bad ." -> bad bad bad . (commas OOV)
    assert torch.equal(x[0], torch.stack([v["bad"], v["bad"], v["bad"], v["."], z]))
    # "bad plot . bad film !" -> truncated to 5 after dropping "!"
    assert torch.equal(x[1], torch.stack([v["bad"], v["plot"], v["."], v["bad"], v["film"]]))
    # "good ! good ..." -> "!" and "..." OOV
    assert torch.equal(x[2], torch.stack([v["good"], v["good"], z, z, z]))
    assert torch.equal(x[3], torch.stack([v["good"], v["film"], v["good"], v["plot"], z]))


def test_imdb_missing(tmp_path):
    with pytest.raises(DatasetMissingError, match=r"IMDB not found: .*aclImdb[/\\]train lacks neg/\*\.txt, "
                                                  r"pos/\*\.txt"):
        load_imdb(tmp_path, tmp_path / "w.bin")
    write_imdb(tmp_path)
    with pytest.raises(DatasetMissingError, match=r"aclImdb[/\\]test lacks neg/\*\.txt, pos/\*\.txt"):
        imdb_files(tmp_path, "test")
    with pytest.raises(DatasetMissingError, match="word2vec embeddings not found"):
        load_imdb(tmp_path, tmp_path / "absent.bin")
    with pytest.raises(ConfigError, match="unknown split 'val'"):
        load_imdb(tmp_path, tmp_path / "w.bin", split="val")


# ---------------------------------------------------------------------------------------------------------- SNLI

SNLI = [
    ("neutral", "A good film.", "A bad plot!"),
    ("-", "Good.", "Bad."),
    ("contradiction", "Bad, bad film?", "Good plot."),
    ("entailment", "The plot", "The film"),
]


def write_snli(root: Path, split: str = "train", form: str = "jsonl") -> Path:
    folder = root / "snli_1.0"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"snli_1.0_{split}.{form}"
    if form == "jsonl":
        lines = [json.dumps({"annotator_labels": [g], "captionID": "x", "gold_label": g, "pairID": str(i),
                             "sentence1": s1, "sentence1_binary_parse": "( x )", "sentence2": s2})
                 for i, (g, s1, s2) in enumerate(SNLI)]
    else:
        lines = ["gold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\t"
                 "sentence1\tsentence2\tcaptionID\tpairID\tlabel1"]
        lines += [f"{g}\t( x )\t( y )\t(ROOT x)\t(ROOT y)\t{s1}\t{s2}\tc{i}\tp{i}\t{g}" for i, (g, s1, s2) in
                  enumerate(SNLI)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


@pytest.mark.parametrize("form", ["jsonl", "txt"])
def test_load_snli(tmp_path, form):
    write_snli(tmp_path, "train", form)
    x, y = load_snli(tmp_path, write_text(tmp_path / "w.txt"), seq_len=3)
    assert x.shape == (3, 6, DIM) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.tolist() == [0, 1, 2]
    v = {w: torch.from_numpy(expected(w)) for w in VECTORS}
    z = torch.zeros(DIM)
    assert torch.equal(x[0], torch.stack([v["good"], v["film"], v["."], v["bad"], v["plot"], z]))
    assert torch.equal(x[1], torch.stack([v["bad"], v["bad"], v["film"], v["good"], v["plot"], v["."]]))
    assert torch.equal(x[2], torch.stack([v["plot"], z, z, v["film"], z, z]))


def test_snli_limit_counts_file_rows(tmp_path):
    write_snli(tmp_path, "test")
    x, y = load_snli(tmp_path, write_text(tmp_path / "w.txt"), seq_len=2, split="test", limit=3)
    assert x.shape == (2, 4, DIM) and y.tolist() == [0, 1]  # rows 1-3 of the file, the "-" row skipped
    assert [r[0] for r in snli_rows(tmp_path / "snli_1.0" / "snli_1.0_test.jsonl")] == [r[0] for r in SNLI]


def test_snli_errors(tmp_path):
    with pytest.raises(DatasetMissingError, match=r"SNLI not found: .*snli_1\.0 lacks snli_1\.0_train\.jsonl "
                                                  r"\(or snli_1\.0_train\.txt\)"):
        load_snli(tmp_path, tmp_path / "w.txt")
    folder = tmp_path / "snli_1.0"
    folder.mkdir()
    (folder / "snli_1.0_train.jsonl").write_text('{"gold_label": "neutral", "sentence1": "a"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 1: a JSON object with fields gold_label, sentence1, sentence2"):
        load_snli(tmp_path, tmp_path / "w.txt")
    (folder / "snli_1.0_test.txt").write_text("gold_label\tsentence1\nneutral\ta\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 1: header lacks column\(s\) sentence2"):
        load_snli(tmp_path, tmp_path / "w.txt", split="test")
