"""The model contract is complete: generic modules ask a model only what `EnergyModel` / `Trainable` declare.

The relaxation, the rules, the trainer and the checks never import a concrete model and never probe one with
``hasattr`` / ``getattr``: a capability (a fast relaxation, parameter groups, binary weights, the metrics the
trainer logs, a projection after the step, an energy, a nudge) is a method of the contract with a default, so a
model from another package works everywhere by overriding what it has. The scan has a negative control: a
planted probe and a planted import are found.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch
from torch import nn

import eqbench
from eqbench.checks.energy import contraction_scale
from eqbench.config import OptimizerConfig
from eqbench.errors import ConfigError
from eqbench.models.base import EnergyModel
from eqbench.relaxation import relax
from eqbench.rules import BPTT, EP
from eqbench.train import build_optimizer

ROOT = Path(eqbench.__file__).parent
GENERIC = [ROOT / "train.py", ROOT / "rules" / "__init__.py", ROOT / "relaxation.py",
           *sorted((ROOT / "checks").glob("*.py"))]
#: what generic code may take from eqbench.models: the contract and the registry, never a concrete model
ALLOWED = {"EnergyModel", "State", "Trainable", "build_model", "model_factory", "model_factories"}


def violations(source: str, name: str) -> list[str]:
    """Probes of a model (hasattr/getattr on a name containing "model") and imports of a concrete model."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr"):
            target = ast.unparse(node.args[0]) if node.args else ""
            if "model" in target:
                out.append(f"{name}:{node.lineno}: {node.func.id}({target}, …)")
        if isinstance(node, ast.ImportFrom) and node.module and "models" in node.module.split("."):
            parts = node.module.split(".")
            sub = parts[parts.index("models") + 1:] if "models" in parts else []
            if sub and sub != ["base"]:
                out.append(f"{name}:{node.lineno}: imports eqbench.models.{'.'.join(sub)}")
            elif not sub:
                out += [f"{name}:{node.lineno}: imports {a.name} from eqbench.models"
                        for a in node.names if a.name not in ALLOWED]
    return out


@pytest.mark.parametrize("path", GENERIC, ids=lambda p: str(p.relative_to(ROOT)))
def test_generic_module_names_no_concrete_model_and_probes_none(path):
    assert violations(path.read_text(), path.name) == []


def test_negative_control_the_scan_finds_a_probe_and_a_concrete_import():
    planted = ("from ..models.hopfield import log_spread\nfrom .models import LayeredEP, build_model\n"
               "def f(model):\n    return hasattr(model, 'fast_relax') or getattr(self.run.model, 'p', 0)\n")
    found = violations(planted, "planted.py")
    assert len(found) == 4, found


class Minimal(EnergyModel):
    """Only what the contract requires: two layers, Φ = ⟨W x, s1⟩ + ⟨V s1, s2⟩ − β·L, a sigmoid step."""

    name, in_shape, n_classes = "MINIMAL", (4,), 3

    def __init__(self) -> None:
        super().__init__()
        self.w, self.v = nn.Linear(4, 5), nn.Linear(5, 3)

    def state_shapes(self):
        return [(5,), (3,)]

    def phi(self, x, s, beta=0.0, y=None):
        total = (self.w(x) * s[0]).sum(1) + (self.v(s[0]) * s[1]).sum(1)
        return total if beta == 0.0 else total + self.nudge_term(s, beta, y)

    def loss(self, s, y):
        return 0.5 * ((s[1] - torch.nn.functional.one_hot(y, 3).to(s[1])) ** 2).sum(1)

    def output(self, s):
        return s[1]

    def activations(self):
        return [torch.sigmoid, torch.sigmoid]


def test_a_model_that_declares_nothing_gets_the_contracts_reasons():
    model, x, y = Minimal().double(), torch.rand(2, 4, dtype=torch.float64), torch.tensor([0, 2])
    assert model.energy(x, model.init_state(x)) is None
    with pytest.raises(NotImplementedError, match=r"^MINIMAL has no closed-form step$"):
        model.closed_form_drive(x, model.init_state(x))
    with pytest.raises(ConfigError) as e:
        contraction_scale(model, x)
    assert str(e.value) == ("contraction_scale needs a drive u = H·s + c with symmetric H; MINIMAL: it does not "
                            "declare an affine symmetric drive (EnergyModel.why_drive_not_affine)")
    with pytest.raises(ConfigError) as e:
        EP(beta=0.1, T1=5, T2=2, estimator="holomorphic", points=2).compute_gradients(model, x, y)
    assert str(e.value) == ("holomorphic EP cannot run on MINIMAL: it does not declare holomorphic dynamics "
                            "(EnergyModel.why_not_holomorphic)")


def test_a_model_declaring_only_the_required_methods_runs_everywhere():
    torch.manual_seed(0)
    m = Minimal().double()
    x, y = torch.rand(6, 4, dtype=torch.float64), torch.arange(6) % 3
    assert m.fast_relax(x, m.init_state(x), 3) is None and m.energy(x, m.init_state(x)) is None
    assert m.binary_weights() == [] and m.batch_metrics() == {} and m.epoch_metrics([]) == {} == m.run_metrics()
    s = relax(m, x, m.init_state(x), 20)
    assert [tuple(t.shape) for t in s] == [(6, 5), (6, 3)]
    for rule in (EP(beta=0.1, T1=20, T2=5), BPTT(T1=20, T2=5)):
        rule.compute_gradients(m, x, y)
        assert all(p.grad is not None for p in m.parameters())
    opt = build_optimizer(m, OptimizerConfig(name="sgd", lrs=[0.1], momentum=0.0))
    opt.step()
    m.project_()  # the default projection leaves the step's result alone
    # the nudge the contract declares: −β·L
    assert torch.allclose(m.phi(x, s, 0.3, y) - m.phi(x, s), -0.3 * m.loss(s, y))
