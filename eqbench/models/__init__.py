"""Model registry: eqbench's models by name, plus those other packages register as entry points
(group ``eqbench.models``, see eqbench.plugins) or name as a ``package.module:factory`` path."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, unknown
from ..plugins import entry_points_of, load_object
from .base import EnergyModel, State, Trainable
from .binary import BinaryEP, bin_cnn, bin_mlp
from .dchn import dchn
from .feedforward import ConvPEPITANet, FeedForward
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
    "FC": FeedForward,  # ``sizes`` lists every layer, input first (PEPITA's --start_size/--n_hlayers)
    "CONV1FC": ConvPEPITANet,  # Net1conv1fcXL (MNIST), or its _cif twin with in_shape=(3, 32, 32)
    "HOPFIELD": HopfieldEP,
    "DCHN": dchn,  # Scellier et al. 2023's deep convolutional Hopfield network (eqbench.models.dchn)
    "BIN_MLP": bin_mlp,
    "BIN_CNN": bin_cnn,
    "SEQ_IMDB": seq_imdb,
    "SEQ_SNLI": seq_snli,
}


def model_factories() -> dict[str, Callable[..., EnergyModel]]:
    """eqbench's models and every model registered under the ``eqbench.models`` entry-point group."""
    return {**MODELS, **entry_points_of("eqbench.models", MODELS)}


def model_factory(name: str) -> Callable[..., EnergyModel]:
    """The factory of a registered name or of a ``package.module:factory`` path; ConfigError otherwise."""
    if ":" in name:

        return load_object(name, "model factory")
    factories = MODELS if name in MODELS else model_factories()
    if name not in factories:
        raise unknown("model", name, factories)
    return factories[name]


def build_model(name: str, **config: Any) -> EnergyModel:
    """Build a model by registry name or ``package.module:factory`` path; an unknown name, an option the
    factory rejects or a factory that returns no EnergyModel raises ConfigError in one line."""
    factory = model_factory(name)
    try:
        model = factory(**config)
    except TypeError as e:  # an unknown keyword: say which model rejected it
        raise unknown_option(name, e) from None
    if not isinstance(model, Trainable):
        raise ConfigError(f"model factory {name!r} returned {type(model).__name__}, not an eqbench.EnergyModel")
    return model


def unknown_option(name: str, e: TypeError):
    """"P_MLP: got an unexpected keyword argument 'colour'": Python's message without the callable that raised it
    (``LayeredEP.__init__()``, ``fc()``), which the user never named."""
    return ConfigError(f"{name}: " + re.sub(r"^[\w.]+\(\) ", "", str(e)))


__all__ = ["BinaryEP", "EnergyModel", "HopfieldEP", "LayeredEP", "SequenceEP", "MODELS", "State", "Trainable",
           "build_model", "model_factories", "model_factory"]
