"""Helpers for the suites (and for users' own suites built on them)."""

from __future__ import annotations

from hypothesis import settings


def scaled_examples(n: int) -> int:
    """A per-test example count ``n`` at the ``ci`` profile's 25, scaled with the active profile."""
    return max(2, settings.default.max_examples * n // 25)


def hopfield_config(**over) -> dict:
    """Gammell et al.'s protocol in miniature: persistent particles, fixed batches, a regression cost."""
    cfg = {
        "model": {"name": "HOPFIELD", "sizes": [10, 8, 8, 1], "topology_type": "SW_no_intra", "p": 0.2,
                  "bypass_mag": 0.5},
        "rule": {"name": "EP", "beta": 1.0, "T1": 20, "T2": 4, "estimator": "random_sign", "persistent": True},
        "optimizer": {"name": "sgd", "lrs": [0.05, 0.02, 0.01]},
        "data": {"name": "diabetes_gammell", "batch_size": 5, "test_batch_size": 5, "shuffle": "once"},
        "epochs": 3,
        "seed": 2,
    }
    cfg.update(over)
    return cfg
