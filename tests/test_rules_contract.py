"""Behaviour of eqbench.rules that users rely on and the theory suites cannot see (issue 19: each test closes a gap
that mutation testing found in rules.py; suites/mutation/equivalent.yaml lists the mutants that change no result).
"""

from __future__ import annotations

import pytest
import torch

from eqbench import build_model, relax
from eqbench.errors import ConfigError
from eqbench.rules import BPTT, EP, write_grads
from eqbench.rules.algorithms import all_rules, build_rule

pytestmark = pytest.mark.usefixtures("float64_default")


def _mlp(sizes=(6, 5, 4)):
    torch.manual_seed(0)
    model = build_model("P_MLP", sizes=list(sizes), act="my_sigmoid").double()
    return model, torch.rand(3, 6), torch.tensor([0, 3, 1])


def test_bad_rule_option_names_the_rule_and_the_keyword_only():
    with pytest.raises(ConfigError) as e:
        build_rule("EP", beta=0.1, T1=3, T2=2, bogus=3)
    assert str(e.value) == "rule EP: got an unexpected keyword argument 'bogus'"


def test_bptt_step_errors_name_bptt_and_allow_backprop_through_every_step():
    with pytest.raises(ConfigError, match=r"^BPTT needs T1 ≥ 1 and T2 ≥ 1 steps"):
        BPTT(T1=0, T2=1)
    BPTT(T1=5, T2=5)  # through all T1 steps: allowed
    with pytest.raises(ConfigError, match="T2=6 > T1=5"):
        BPTT(T1=5, T2=6)


def test_bptt_relaxes_in_its_own_mode():
    """An asynchronous BPTT rule evaluates and trains on the asynchronous dynamics, not the synchronous default."""
    model, x, y = _mlp(sizes=[6, 5, 5, 4])  # two hidden layers: the async groups differ from one sync step
    rule = BPTT(T1=6, T2=3, mode="async")
    want = relax(model, x, model.init_state(x), 6, mode="async")
    sync = relax(model, x, model.init_state(x), 6, mode="sync")
    assert not torch.allclose(want[0], sync[0])
    _, got = rule.predict(model, x)
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    out = rule.compute_gradients(model, x, y)
    assert all(torch.allclose(a, b, atol=1e-14) for a, b in zip(out["free"], want))


def test_persistent_particles_follow_the_batch_key_only_when_persistent():
    model, x, y = _mlp()
    fresh = EP(beta=0.1, T1=2, T2=2).free_phase(model, x)
    plain = EP(beta=0.1, T1=2, T2=2)
    plain.compute_gradients(model, x, y, key="train/0")
    assert all(torch.equal(a, b) for a, b in zip(plain.free_phase(model, x, key="train/0"), fresh))
    kept = EP(beta=0.1, T1=2, T2=2, persistent=True)
    first = kept.compute_gradients(model, x, y, key="train/0")["free"]
    second = kept.free_phase(model, x, key="train/0")  # two more steps from the first phase's end
    assert all(torch.equal(a, b) for a, b in zip(second, relax(model, x, first, 2)))


def test_persistent_particles_take_the_models_dtype():
    """Particles restored from a checkpoint of another dtype continue in the model's dtype."""
    model, x, y = _mlp()
    rule = EP(beta=0.1, T1=2, T2=2, persistent=True)
    rule.load_state_dict({"particles": {"b": [torch.full((3, 5), 0.5, dtype=torch.float32),
                                              torch.full((3, 4), 0.5, dtype=torch.float32)]},
                          "gen": rule.state_dict()["gen"]})
    assert all(s.dtype == torch.float64 for s in rule.free_phase(model, x, key="b"))


def test_write_grads_gives_each_parameter_its_own_detached_tensor():
    """One tensor given to two parameters (tied updates) is split, so an in-place step on one leaves the other; a
    gradient with history is stored without it."""
    torch.manual_seed(0)
    model = build_model("P_MLP", sizes=[6, 4, 4], act="my_sigmoid").double()
    grads = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    grads["synapses.0.bias"] = grads["synapses.1.bias"] = torch.ones(4, dtype=torch.float64)
    grads["synapses.0.weight"] = torch.ones(4, 6, dtype=torch.float64, requires_grad=True) * 2.0  # has a grad_fn
    write_grads(model, grads)
    params = dict(model.named_parameters())
    assert params["synapses.0.weight"].grad.grad_fn is None
    params["synapses.0.bias"].grad.add_(1.0)
    assert torch.equal(params["synapses.1.bias"].grad, torch.ones(4, dtype=torch.float64))


def test_rule_plugins_are_read_from_the_eqbench_rules_group(monkeypatch):
    import eqbench.plugins as plugins

    seen = []

    def fake_group(group):
        seen.append(group)
        return {"MyRule": "eqbench.rules:EP"} if group == "eqbench.rules" else {}

    monkeypatch.setattr(plugins, "_group", fake_group)
    rules = all_rules()
    assert rules["MyRule"] is EP and "eqbench.rules" in seen
    monkeypatch.setattr(plugins, "_group", lambda group: {"EP": "eqbench.rules:BPTT"})
    with pytest.raises(ConfigError, match="shadows eqbench's own 'EP'"):
        all_rules()


def test_evaluation_continues_the_test_batch_particle():
    """With persistent particles, evaluating a test batch starts from (and updates) that batch's particle, as
    Gammell et al.'s calculate_test_error does."""
    model, x, _ = _mlp()
    rule = EP(beta=0.1, T1=2, T2=2, persistent=True)
    _, first = rule.predict(model, x, key="test/0")
    _, second = rule.predict(model, x, key="test/0")
    assert all(torch.equal(a, b) for a, b in zip(second, relax(model, x, first, 2)))


def test_a_rule_without_persistence_ignores_restored_particles():
    """Particles in a loaded state (a checkpoint of a persistent run) are not used by a rule with persistent off."""
    model, x, _ = _mlp()
    rule = EP(beta=0.1, T1=2, T2=2)
    rule.load_state_dict({"particles": {"b": [torch.full((3, 5), 0.5), torch.full((3, 4), 0.5)]},
                          "gen": rule.state_dict()["gen"]})
    fresh = EP(beta=0.1, T1=2, T2=2).free_phase(model, x)
    assert all(torch.equal(a, b) for a, b in zip(rule.free_phase(model, x, key="b"), fresh))
