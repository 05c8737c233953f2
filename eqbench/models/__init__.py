"""Model registry: a new model joins every suite by being registered here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import unknown
from .base import EnergyModel, State
from .binary import BinaryEP, bin_cnn, bin_mlp
from .feedforward import conv1fc, fc
from .hopfield import HopfieldEP
from .layered import LayeredEP
from .sequence import SequenceEP, seq_imdb, seq_snli


def p_mlp(sizes=(784, 512, 10), **kw: Any) -> LayeredEP:
    """P_MLP: ``sizes`` lists every layer, input first (Laborieux's ``--archi``)."""
    sizes = list(sizes)
    return LayeredEP((sizes[0],), fc=sizes[1:], name="P_MLP", **kw)


def vf_mlp(sizes=(784, 512, 10), **kw: Any) -> LayeredEP:
    sizes = list(sizes)
    return LayeredEP((sizes[0],), fc=sizes[1:], feedback=True, name="VF_MLP", **kw)


def p_cnn(in_shape=(1, 28, 28), **kw: Any) -> LayeredEP:
    """P_CNN: ``channels``, ``kernels``, ``strides``, ``paddings``, ``pools`` then ``fc``."""
    return LayeredEP(in_shape, name="P_CNN", **kw)


def vf_cnn(in_shape=(1, 28, 28), **kw: Any) -> LayeredEP:
    return LayeredEP(in_shape, feedback=True, name="VF_CNN", **kw)


MODELS: dict[str, Callable[..., EnergyModel]] = {
    "P_MLP": p_mlp,
    "P_CNN": p_cnn,
    "VF_MLP": vf_mlp,
    "VF_CNN": vf_cnn,
    "FC": fc,
    "CONV1FC": conv1fc,
    "HOPFIELD": HopfieldEP,
    "BIN_MLP": bin_mlp,
    "BIN_CNN": bin_cnn,
    "SEQ_IMDB": seq_imdb,
    "SEQ_SNLI": seq_snli,
}


def build_model(name: str, **config: Any) -> EnergyModel:
    """Build a registered model by name; an unknown name raises ConfigError listing the known ones."""
    if name not in MODELS:
        raise unknown("model", name, MODELS)
    try:
        return MODELS[name](**config)
    except TypeError as e:  # an unknown keyword: say which model rejected it
        raise unknown_option(name, e) from None


def unknown_option(name: str, e: TypeError):
    from ..errors import ConfigError

    return ConfigError(f"{name}: {e}".replace("__init__() ", "").replace("LayeredEP.", "").replace("HopfieldEP.", "")
                       .replace("BinaryEP.", "").replace("SequenceEP.", ""))


__all__ = ["BinaryEP", "EnergyModel", "HopfieldEP", "LayeredEP", "SequenceEP", "MODELS", "State", "build_model"]
