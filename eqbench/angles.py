"""The angle between two tensors seen as vectors, the alignment statistic of feedback-alignment studies (PEPITA's
and FA's updates against BP's gradient, a VF model's feedback weights against their forward twins)."""

from __future__ import annotations

import math

from torch import Tensor


def angle_deg(a: Tensor, b: Tensor) -> float:
    """Angle in degrees between ``a`` and ``b`` (flattened), by Kahan's stable formula 2·atan2(‖â − b̂‖, ‖â + b̂‖) in
    float64: exactly 0 for identical tensors and accurate near 0° and 180°, where acos of the cosine loses half the
    digits (acos(1 − 1e-16) is already 8e-7°). NaN when either is zero or non-finite (no direction to compare)."""
    a, b = a.detach().double().flatten(), b.detach().double().flatten()
    u, v = a / a.norm(), b / b.norm()  # a zero or non-finite norm makes u or v, so the angle, NaN (0/0, inf/inf)
    return math.degrees(2.0 * math.atan2(float((u - v).norm()), float((u + v).norm())))
