"""Negative controls: deliberately broken variants that every check must catch.

A suite that cannot fail proves nothing; each of these must make its check fail, and the suites
assert that it does.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..rules import EP


@dataclass
class FlippedSignEP(EP):
    """EP with the sign of its estimator flipped: the update then points up the loss."""

    def pair_grads(self, *args, **kwargs):
        return {k: -v for k, v in super().pair_grads(*args, **kwargs).items()}
