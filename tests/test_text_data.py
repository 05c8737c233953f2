"""IMDB / SNLI with word2vec (eqbench.data.text): tiny files in the real formats written into tmp_path; the word2vec
reader (text, binary, gzip), the authors' tokenisation, OOV dropping, padding, truncation, labels, and errors; the
registry datasets ``imdb`` / ``snli`` (a tiny 300-d word2vec file), their cache, and the download hook (no
network: the downloader is replaced)."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from eqbench.data import DATASET_INFO, EMBEDDED, load_dataset, make_loaders
from eqbench.data.info import SPLITS
from eqbench.data.text import (
    CACHE_DIR,
    IMDB_MD5,
    IMDB_URL,
    SEQ_LEN,
    SNLI_LIMITS,
    SNLI_MD5,
    SNLI_URL,
    WORD2VEC_FILE,
    TokenSequences,
    cache_file,
    embed,
    embeddings_file,
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


# ----------------------------------------------------------------------------------- registry: imdb, snli by name

W2V = 300
WORDS = ["good", "bad", "film", ".", "plot", "the", "a"]  # the other words of the tiny files are out of vocabulary
needs_tv = pytest.mark.skipif(importlib.util.find_spec("torchvision") is None, reason="needs torchvision")


def word_vectors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {w: rng.standard_normal(W2V).astype(np.float32) for w in WORDS}


def write_w2v(path: Path, binary: bool = False) -> Path:
    """A tiny 300-d word2vec file (text, or binary as the Google News file) with the words of WORDS."""
    path.parent.mkdir(parents=True, exist_ok=True)
    vecs = word_vectors()
    if binary:
        path.write_bytes(f"{len(vecs)} {W2V}\n".encode() + b"".join(
            w.encode() + b" " + struct.pack(f"<{W2V}f", *v) + b"\n" for w, v in vecs.items()))
    else:
        path.write_text(f"{len(vecs)} {W2V}\n" + "".join(
            w + " " + " ".join(repr(float(x)) for x in v) + "\n" for w, v in vecs.items()), encoding="utf-8")
    return path


@pytest.fixture
def text_dir(tmp_path):
    """Both splits of IMDB and SNLI (jsonl) and the default embeddings file, in one data folder."""
    for split in SPLITS:
        write_imdb(tmp_path, split)
        write_snli(tmp_path, split)
    write_w2v(tmp_path / WORD2VEC_FILE, binary=True)
    return tmp_path


def test_registry_entries():
    imdb, snli = DATASET_INFO["imdb"], DATASET_INFO["snli"]
    assert (imdb.in_shape, imdb.n_classes, imdb.task, imdb.embedded) == ((600, 300), 2, "classification", False)
    assert (snli.in_shape, snli.n_classes, snli.task, snli.embedded) == ((50, 300), 3, "classification", False)
    assert SEQ_LEN == {"imdb": 600, "snli": 25} and SNLI_LIMITS == {"train": 540_000, "test": 10_000}
    for info, folder in ((imdb, "aclImdb"), (snli, "snli_1.0")):
        assert folder in info.description and "GoogleNews-vectors-negative300.bin" in info.description
        assert "Bal & Sengupta" in info.description
    assert "imdb" not in EMBEDDED and "snli" not in EMBEDDED


@pytest.mark.parametrize("split", SPLITS)
def test_imdb_by_name_equals_load_imdb(text_dir, split):
    ds = load_dataset("imdb", split, data_dir=text_dir)
    assert isinstance(ds, TokenSequences) and len(ds) == 4
    assert ds.tokens.dtype == torch.int32 and ds.tokens.shape == (4, 600)
    assert ds.vectors.shape[1] == W2V and len(ds.vectors) <= len(WORDS) + 1  # only the words used, + padding
    x, y = ds[1]
    assert x.dtype == torch.float32 and x.shape == DATASET_INFO["imdb"].in_shape
    assert y.dtype == torch.int64 and y.shape == () and int(y) == 0
    dense_x, dense_y = load_imdb(text_dir, text_dir / WORD2VEC_FILE, seq_len=600, split=split)
    assert torch.equal(torch.stack([ds[i][0] for i in range(len(ds))]), dense_x)
    assert torch.equal(torch.stack([ds[i][1] for i in range(len(ds))]), dense_y)
    assert dense_y.tolist() == [0, 0, 1, 1]
    v = {w: torch.from_numpy(a) for w, a in word_vectors().items()}
    # "bad plot . bad film !": "!" dropped (OOV), then zero padding up to 600
    assert torch.equal(x[:5], torch.stack([v["bad"], v["plot"], v["."], v["bad"], v["film"]]))
    assert not x[5:].any()


@pytest.mark.parametrize("split", SPLITS)
def test_snli_by_name_equals_load_snli(text_dir, split):
    ds = load_dataset("snli", split, data_dir=text_dir)
    assert ds.tokens.shape == (3, 50) and [int(ds[i][1]) for i in range(3)] == [0, 1, 2]  # the "-" row skipped
    x, y = ds[2]  # "The plot" / "The film": premise padded to 25, then the hypothesis
    assert x.shape == DATASET_INFO["snli"].in_shape and x.dtype == torch.float32 and y.shape == ()
    v = {w: torch.from_numpy(a) for w, a in word_vectors().items()}
    assert torch.equal(x[:2], torch.stack([v["the"], v["plot"]])) and not x[2:25].any()
    assert torch.equal(x[25:27], torch.stack([v["the"], v["film"]])) and not x[27:].any()
    dense = load_snli(text_dir, text_dir / WORD2VEC_FILE, seq_len=25, split=split, limit=SNLI_LIMITS[split])
    assert torch.equal(ds.dense()[0], dense[0]) and torch.equal(ds.dense()[1], dense[1])


def test_snli_limit_by_default(text_dir, monkeypatch):
    monkeypatch.setitem(SNLI_LIMITS, "train", 3)  # the first 3 rows of the file, of which one is "-"
    ds = load_dataset("snli", "train", data_dir=text_dir)
    assert ds.labels.tolist() == [0, 1]
    assert len(list((text_dir / CACHE_DIR).glob("snli_train_L25_*.pt"))) == 1


def test_make_loaders_with_relative_embeddings(text_dir):
    (text_dir / WORD2VEC_FILE).unlink()
    write_w2v(text_dir / "vectors" / "w2v.txt")
    train, test = make_loaders("imdb", batch_size=3, test_batch_size=4, data_dir=text_dir,
                               embeddings="vectors/w2v.txt")
    x, y = next(iter(train))
    assert x.shape == (3, 600, 300) and x.dtype == torch.float32 and y.shape == (3,) and y.dtype == torch.int64
    x, y = next(iter(test))
    assert x.shape == (4, 600, 300) and y.tolist() == [0, 0, 1, 1]
    x, _ = next(iter(make_loaders("snli", batch_size=2, data_dir=text_dir,
                                  embeddings=str(text_dir / "vectors" / "w2v.txt"))[0]))  # absolute
    assert x.shape == (2, 50, 300)


def test_default_embeddings_gz_fallback(text_dir):
    binary = (text_dir / WORD2VEC_FILE).read_bytes()
    (text_dir / WORD2VEC_FILE).unlink()
    (text_dir / f"{WORD2VEC_FILE}.gz").write_bytes(gzip.compress(binary))
    assert embeddings_file(text_dir) == text_dir / f"{WORD2VEC_FILE}.gz"
    x, _ = load_dataset("imdb", "test", data_dir=text_dir)[0]
    assert torch.equal(x[0], torch.from_numpy(word_vectors()["bad"]))


def test_registry_errors(tmp_path, text_dir):
    with pytest.raises(DatasetMissingError) as e:
        load_dataset("imdb", "train", data_dir=tmp_path / "empty")
    msg = str(e.value)
    assert "\n" not in msg and str(tmp_path / "empty" / "aclImdb" / "train") in msg and "--download" in msg
    with pytest.raises(DatasetMissingError, match=r"snli_1\.0 lacks snli_1\.0_test\.jsonl.*--download"):
        load_dataset("snli", "test", data_dir=tmp_path / "empty")
    (text_dir / WORD2VEC_FILE).unlink()
    with pytest.raises(DatasetMissingError) as e:
        load_dataset("imdb", "test", data_dir=text_dir)
    msg = str(e.value)
    assert "\n" not in msg and f"{text_dir} lacks {WORD2VEC_FILE}" in msg and "does not download" in msg
    with pytest.raises(DatasetMissingError, match=r"absent\.bin \(data\.embeddings, relative to .*\) is not a file"):
        load_dataset("snli", "test", data_dir=text_dir, embeddings="absent.bin")
    with pytest.raises(ConfigError, match=r"embeddings \(data\.embeddings\) apply to the text datasets imdb, snli "
                                          r"only, not 'digits'"):
        load_dataset("digits", "train", embeddings="w.bin")
    with pytest.raises(ConfigError, match="not 'digits'"):
        make_loaders("digits", batch_size=5, embeddings="w.bin")
    with pytest.raises(ConfigError, match="augmentation is not supported for the text dataset 'imdb'"):
        load_dataset("imdb", "train", data_dir=text_dir, augment=True)
    write_text(text_dir / "w4.txt")  # 4-d vectors
    with pytest.raises(ConfigError, match=r"w4\.txt holds 4-d vectors, but dataset 'imdb' expects 300-d"):
        load_dataset("imdb", "test", data_dir=text_dir, embeddings="w4.txt")
    assert not list((text_dir / CACHE_DIR).glob("*"))  # nothing cached from the wrong file


def test_embeddings_for_another_dataset_fail_in_a_run():
    from eqbench.config import RunConfig
    from eqbench.train import build_run

    cfg = RunConfig.from_dict({
        "model": {"name": "P_MLP", "sizes": [64, 8, 10], "act": "my_hard_sig"},
        "rule": {"name": "EP", "beta": 0.5, "T1": 2, "T2": 1},
        "optimizer": {"name": "sgd", "lrs": [0.1, 0.1]},
        "data": {"name": "digits", "batch_size": 8, "embeddings": "w.bin"},
        "epochs": 1})
    assert cfg.data.embeddings == "w.bin"
    with pytest.raises(ConfigError, match="apply to the text datasets imdb, snli only, not 'digits'"):
        build_run(cfg)  # the config's embeddings reach make_loaders


# -------------------------------------------------------------------------------------------------------- cache


def test_cache_skips_the_embeddings(text_dir, monkeypatch):
    first = load_dataset("imdb", "train", data_dir=text_dir)
    files = list((text_dir / CACHE_DIR).glob("*"))
    assert [f.name[:15] for f in files] == ["imdb_train_L600"] and files[0].suffix == ".pt"
    assert files[0] == cache_file("imdb", "train", text_dir, text_dir / WORD2VEC_FILE, 600, None)

    def no_read(*a, **k):
        raise AssertionError("the embeddings were read again")

    monkeypatch.setattr("eqbench.data.text._word2vec", no_read)
    second = load_dataset("imdb", "train", data_dir=text_dir)
    for a, b in ((first.tokens, second.tokens), (first.vectors, second.vectors), (first.labels, second.labels)):
        assert a.dtype == b.dtype and torch.equal(a, b)
    with pytest.raises(AssertionError, match="read again"):  # the test split has no cache yet
        load_dataset("imdb", "test", data_dir=text_dir)
    snli_key = cache_file("snli", "train", text_dir, text_dir / WORD2VEC_FILE, 25, 540_000)
    assert snli_key != cache_file("snli", "train", text_dir, text_dir / WORD2VEC_FILE, 25, 3)  # the limit counts


def test_cache_follows_the_embeddings_file(text_dir):
    load_dataset("imdb", "test", data_dir=text_dir)
    path = text_dir / WORD2VEC_FILE
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a newer file: a new cache
    load_dataset("imdb", "test", data_dir=text_dir)
    assert len(list((text_dir / CACHE_DIR).glob("imdb_test_L600_*.pt"))) == 2
    assert not list((text_dir / CACHE_DIR).glob("*.tmp"))  # the atomic write left no temporary file


@pytest.mark.parametrize("content", [b"", b"not a torch file", "dict"])
def test_corrupt_cache_is_rebuilt(text_dir, content):
    first = load_dataset("snli", "test", data_dir=text_dir)
    cache = next((text_dir / CACHE_DIR).glob("snli_test_*.pt"))
    if content == "dict":  # a valid torch file with the wrong content
        torch.save({"tokens": torch.zeros(2, 3)}, cache)
    else:
        cache.write_bytes(content)
    with pytest.warns(UserWarning, match=r"ignoring the unreadable cache .*snli_test_L25_.*rebuilding it"):
        again = load_dataset("snli", "test", data_dir=text_dir)
    assert torch.equal(again.tokens, first.tokens) and torch.equal(again.vectors, first.vectors)
    loaded = torch.load(cache, weights_only=True)  # rewritten
    assert torch.equal(loaded["tokens"], first.tokens)


def test_unwritable_cache_only_warns(text_dir):
    (text_dir / CACHE_DIR).write_text("a file where the cache folder should be")
    with pytest.warns(UserWarning, match="could not write the cache"):
        ds = load_dataset("imdb", "test", data_dir=text_dir)
    assert len(ds) == 4


def test_token_sequences_checks_its_tensors():
    vectors = torch.cat([torch.zeros(1, 3), torch.ones(2, 3)])
    labels = torch.tensor([0, 1])
    ds = TokenSequences(torch.tensor([[1, 2, 0], [2, 0, 0]], dtype=torch.int32), vectors, labels)
    assert torch.equal(ds[1][0], torch.tensor([[1.0] * 3, [0.0] * 3, [0.0] * 3])) and len(ds) == 2
    with pytest.raises(ConfigError, match=r"token indices must lie in \[0, 3\)"):
        TokenSequences(torch.tensor([[3]]), vectors, labels[:1])
    with pytest.raises(ConfigError, match="row 0 is zeros"):
        TokenSequences(torch.tensor([[1]]), torch.ones(2, 3), labels[:1])
    with pytest.raises(ConfigError, match=r"labels must be an \(1,\) int64 tensor"):
        TokenSequences(torch.tensor([[1]]), vectors, labels)


# ------------------------------------------------------------------------------------------------------ download


@needs_tv
@pytest.mark.parametrize("name, url, write", [("imdb", IMDB_URL, write_imdb), ("snli", SNLI_URL, write_snli)])
def test_download_only_when_asked(tmp_path, monkeypatch, name, url, write):
    calls = []

    def fake_download(url, download_root, md5=None, **kw):  # unpacks the "archive": both splits
        calls.append((url, Path(download_root), md5))
        for split in SPLITS:
            write(Path(download_root), split)

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", fake_download)
    write_w2v(tmp_path / WORD2VEC_FILE)
    with pytest.raises(DatasetMissingError, match="--download"):
        load_dataset(name, "train", data_dir=tmp_path)
    assert calls == []
    train, test = make_loaders(name, batch_size=2, data_dir=tmp_path, download=True)
    assert calls == [(url, tmp_path, IMDB_MD5 if name == "imdb" else SNLI_MD5)]
    assert len(test.dataset) == len(train.dataset) == (4 if name == "imdb" else 3)
    load_dataset(name, "test", data_dir=tmp_path, download=True)  # already there: no second download
    assert len(calls) == 1


@needs_tv
def test_download_failure_is_one_line(tmp_path, monkeypatch):
    def offline(*a, **k):
        raise OSError("Network is unreachable\nmore")

    monkeypatch.setattr("torchvision.datasets.utils.download_and_extract_archive", offline)
    with pytest.raises(DatasetMissingError, match=r"^dataset 'snli' could not be downloaded into .* \(OSError: "
                                                  r"Network is unreachable\); unpack .*snli_1\.0\.zip there by hand$"):
        load_dataset("snli", "test", data_dir=tmp_path, download=True)
