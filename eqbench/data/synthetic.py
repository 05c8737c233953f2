"""A synthetic sequence task for Bal & Sengupta's models, generated from a seed: ``retrieval`` ("which class
does the probe's match carry?"), in the SNLI layout (a premise segment, then a hypothesis segment).

Token embeddings of dimension ``dim``: ``vocab`` content tokens, random unit vectors in the first ``dim − 1``
coordinates, drawn once from ``embedding_seed``; the last coordinate is an occurrence's class bit, ±1 (drawn
per sequence, so no token belongs to a class).

* Premise (``seq_len`` tokens): distinct content tokens in random order, half with class bit +1, half −1.
* Hypothesis (``seq_len`` tokens): one probe, the content of one premise token (its match) without class bit,
  then zero padding (the authors pad with zero vectors at the end).

The label is the match's class (bit +1 → 1, −1 → 0). It is statistically independent of the two segments'
mean embeddings: the class bits sum to 0 in every premise and the contents are drawn independently of the bits,
so bags of embeddings (uniform attention, scale 0) are at chance exactly. Cross-attention solves it: the
probe's query retrieves its match from the premise, class bit included, and the padding's zero queries attend
uniformly, adding the premise's zero mean bit.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError

#: the registry's synthetic datasets: name -> task parameters and split sizes. Both splits share the
#: embeddings (embedding_seed 0); the train split draws its examples from seed 1, the test split from seed 2.
SYNTHETIC: dict[str, dict[str, int]] = {
    "seq_retrieval": {"seq_len": 4, "dim": 8, "vocab": 16, "n_train": 4000, "n_test": 1000},
}


def synthetic_split(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) numpy arrays of one split of a registry synthetic dataset (:data:`SYNTHETIC`)."""
    p = {k: v for k, v in SYNTHETIC[name].items() if k not in ("n_train", "n_test")}
    n = SYNTHETIC[name]["n_train" if split == "train" else "n_test"]
    x, y = retrieval_task(n, seed=1 if split == "train" else 2, **p)
    return x.numpy(), y.numpy()


def retrieval_task(n: int, *, seq_len: int = 8, dim: int = 16, vocab: int = 32, seed: int = 0,
                   embedding_seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` examples (x float32 (n, 2·seq_len, dim), y int64 (n,)) of the ``retrieval`` task (module doc).

    ``embedding_seed`` draws the content embeddings (shared by a train and a test split); ``seed`` draws the
    examples. ``seq_len`` must be even (balanced class bits) and at most ``vocab``.
    """
    if n < 1 or dim < 2 or seq_len < 2 or seq_len % 2 or seq_len > vocab:
        raise ConfigError(f"retrieval task: need n >= 1, dim >= 2, an even seq_len >= 2 with seq_len <= vocab; "
                          f"got n={n}, seq_len={seq_len}, dim={dim}, vocab={vocab}")
    content = np.random.default_rng(embedding_seed).standard_normal((vocab, dim - 1))
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 2 * seq_len, dim), dtype=np.float32)
    bits = np.repeat([1.0, -1.0], seq_len // 2)
    ids = np.stack([rng.choice(vocab, size=seq_len, replace=False) for _ in range(n)])
    b = np.stack([rng.permutation(bits) for _ in range(n)])
    match = rng.integers(seq_len, size=n)
    x[:, :seq_len, :-1] = content[ids]
    x[:, :seq_len, -1] = b
    x[:, seq_len, :-1] = content[ids[np.arange(n), match]]
    y = (b[np.arange(n), match] > 0).astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)
