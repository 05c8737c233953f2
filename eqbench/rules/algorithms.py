"""Every learning rule by the name a run config, a sweep or ``eqbench check --rule`` gives it: eqbench's rules
(eqbench.rules: EP, BPTT, contrastive and coupled learning; eqbench.forward: PEPITA, BP, FA, DFA), the names of
Scellier et al. 2023's seven algorithms (PEP, NEP, CEP, PCpL, NCpL, CCpL, CL), and the rules other packages
register under the ``eqbench.rules`` entry-point group (eqbench.plugins).

It sits above both rule modules, so neither imports the other's registry: the forward-only rules register here like
every other rule.
"""

from __future__ import annotations

import re

from ..errors import ConfigError, unknown
from ..plugins import entry_points_of
from . import BPTT, EP, ContrastiveLearning, CoupledLearning, LearningRule
from .forward import RULES_FORWARD


def _variant(cls: type, key: str, value: str, name: str, what: str):
    """The rule ``name``: ``cls`` with ``key`` fixed at ``value`` (Scellier et al. 2023's algorithm names)."""

    def make(**kw) -> LearningRule:
        if key in kw:
            raise ConfigError(f"rule {name} fixes {key} = {value}; use rule {cls.__name__ if cls is EP else 'CpL'} "
                              f"to choose the {key}")
        strength = "beta" if cls is EP else "eta"
        v = kw.get(strength)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v <= 0:
            raise ConfigError(f"rule {name} takes a positive {strength} (the sign is in its name), got {v}")
        return cls(**kw, **{key: value})

    make.__name__ = name
    make.__doc__ = f"{what} (Scellier et al. 2023): {cls.__name__} with {key}={value!r}."
    return make


RULES = {
    "EP": EP, "BPTT": BPTT, "CL": ContrastiveLearning, "CpL": CoupledLearning,
    "PEP": _variant(EP, "estimator", "one_sided", "PEP", "positively-perturbed EP"),
    "NEP": _variant(EP, "estimator", "negative", "NEP", "negatively-perturbed EP"),
    "CEP": _variant(EP, "estimator", "symmetric", "CEP", "centered EP"),
    "PCpL": _variant(CoupledLearning, "variant", "positive", "PCpL", "positively-perturbed coupled learning"),
    "NCpL": _variant(CoupledLearning, "variant", "negative", "NCpL", "negatively-perturbed coupled learning"),
    "CCpL": _variant(CoupledLearning, "variant", "centered", "CCpL", "centered coupled learning"),
}
#: the seven algorithms of Scellier et al. 2023's comparative study, in their order
SEVEN = ("CL", "PEP", "NEP", "CEP", "PCpL", "NCpL", "CCpL")


def all_rules() -> dict[str, type]:
    """EP, BPTT, contrastive learning (CL), coupled learning (CpL) and the seven algorithms of Scellier et al. 2023
    by their names (PEP, NEP, CEP, PCpL, NCpL, CCpL), plus the forward-only rules (PEPITA, BP, FA, DFA) of
    eqbench.forward."""
    return {**RULES, **RULES_FORWARD, **entry_points_of("eqbench.rules", {**RULES, **RULES_FORWARD})}


def build_rule(name: str, **kw) -> LearningRule:
    """A registered rule by name (eqbench's, or one another package registers under ``eqbench.rules``)."""
    rules = all_rules()
    if name not in rules:
        raise unknown("learning rule", name, rules)
    if name == "CL" and "eta" in kw:  # the old spelling: CL named coupled learning before the field's names
        raise ConfigError("rule CL is contrastive learning (Scellier et al. 2023's name; it has no eta); coupled "
                          "learning is CpL (or PCpL, NCpL, CCpL): {name: CpL, eta: ...}")
    try:
        return rules[name](**kw)
    except TypeError as e:
        raise ConfigError(f"rule {name}: " + re.sub(r"^[\w.]+\(\) ", "", str(e))) from None
