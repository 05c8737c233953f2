"""Bad input gets one clear line naming the problem, never a traceback from inside torch."""

from __future__ import annotations

import math

import pytest
import torch

from eqbench import BPTT, EP, ConfigError, DivergenceError, ShapeError, build_model, relax
from eqbench.cli import main
from eqbench.rules.algorithms import build_rule


def test_unknown_model():
    # the built-in names, then any model an installed package declares (entry points `eqbench.models`)
    known = ".*".join(["BIN_CNN, BIN_MLP, CONV1FC, DCHN, FC, HOPFIELD", "P_CNN, P_MLP, SEQ_IMDB, SEQ_SNLI, VF_CNN, "
                                                                         "VF_MLP"])
    with pytest.raises(ConfigError, match=rf"unknown model .P_XYZ.; known: {known}") as e:
        build_model("P_XYZ")
    assert "\n" not in str(e.value)


def test_unknown_activation():
    with pytest.raises(ConfigError, match=r"unknown activation 'relu6'; known: .*my_hard_sig"):
        build_model("P_MLP", sizes=[4, 3, 2], act="relu6")


def test_unknown_option_names_the_model():
    with pytest.raises(ConfigError, match=r"P_MLP: .*unexpected keyword argument 'chanels'"):
        build_model("P_MLP", sizes=[4, 3, 2], chanels=[3])


@pytest.mark.parametrize("kw, msg", [
    ({"pools": "m"}, r"2 conv layers need as many kernels"),
    ({"pools": "mx"}, r"pool letters are m \(max\), a \(avg\), i \(none\)"),
    ({"pools": "mm", "kernels": [11, 3]}, r"conv layer 1 \(k=11, stride=1, pad=1, pool=m\) does not fit a 8×8 input"),
    ({"pools": "mm", "loss": "mse", "softmax": True}, r"softmax readout goes with loss='ce'"),
])
def test_bad_cnn_config(kw, msg):
    base = {"in_shape": (1, 8, 8), "channels": [4, 8], "kernels": [3, 3], "paddings": [1, 1], "fc": [10]}
    with pytest.raises(ConfigError, match=msg):
        build_model("P_CNN", **{**base, **kw})


def test_input_shape_mismatch_mlp():
    m = build_model("P_MLP", sizes=[784, 16, 10])
    with pytest.raises(ShapeError, match=r"input has shape \(5, 64\) but P_MLP expects \(batch, 784\)"):
        relax(m, torch.zeros(5, 64), m.init_state(torch.zeros(5, 784)), 3)


def test_input_shape_mismatch_cnn():
    m = build_model("P_CNN", in_shape=(1, 8, 8), channels=[2], kernels=[3], paddings=[1], pools="m", fc=[10])
    with pytest.raises(ShapeError, match=r"input has shape \(5, 3, 8, 8\) but P_CNN expects \(batch, 1, 8, 8\)"):
        m.init_state(torch.zeros(5, 3, 8, 8))


def test_images_into_mlp_are_flattened():
    m = build_model("P_MLP", sizes=[64, 8, 10])
    assert [tuple(s.shape) for s in m.init_state(torch.zeros(5, 1, 8, 8))] == [(5, 8), (5, 10)]


def test_bad_targets():
    m = build_model("P_MLP", sizes=[4, 3, 2])
    x = torch.zeros(5, 4)
    with pytest.raises(ShapeError, match=r"class targets must lie in \[0, 2\)"):
        EP(beta=0.1, T1=2, T2=2).compute_gradients(m, x, torch.tensor([0, 1, 2, 0, 1]))
    with pytest.raises(ShapeError, match=r"class targets have shape \(4,\), expected \(5,\)"):
        EP(beta=0.1, T1=2, T2=2).compute_gradients(m, x, torch.zeros(4, dtype=torch.long))


def test_a_nudged_relaxation_checks_its_targets_once_itself():
    """The steps read targets without a check (no host read per step, EnergyModel.target_matrix): relax checks
    them first, whoever calls it."""
    m = build_model("P_MLP", sizes=[4, 3, 2])
    x = torch.zeros(5, 4)
    with pytest.raises(ShapeError) as e:
        relax(m, x, m.init_state(x), 3, beta=0.5, y=torch.tensor([0, 1, -1, 0, 1]))
    assert str(e.value) == "class targets must lie in [0, 2), got -1..1"
    with pytest.raises(ShapeError, match=r"float targets have shape \(5, 3\), expected \(5, 2\)"):
        relax(m, x, m.init_state(x), 3, beta=0.5, y=torch.zeros(5, 3))


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16, torch.uint8])
def test_target_matrix_is_one_hot_for_every_class_index_type(dtype):
    m = build_model("P_MLP", sizes=[4, 3, 5])
    y = torch.tensor([4, 0, 2, 2], dtype=dtype)
    t = m.target_matrix(y, torch.float64)
    assert t.dtype == torch.float64 and torch.equal(t, torch.nn.functional.one_hot(y.long(), 5).double())
    f = torch.rand(4, 5)
    assert torch.equal(m.target_matrix(f, torch.float64), f.double())  # float targets: cast, not encoded


@pytest.mark.parametrize("beta", [0.0, math.inf, math.nan])
def test_estimator_rejects_beta_it_divides_by(beta):
    with pytest.raises(ConfigError, match=r"the EP estimator divides by β; β must be finite and non-zero"):
        EP(beta=beta, T1=10, T2=5)


def test_unknown_estimator_and_rule():
    with pytest.raises(ConfigError, match=r"unknown estimator 'two_sided' \(did you mean one_sided\?\); known: "
                                         r"centered, holomorphic, negative, one_sided, positive, random_sign, "
                                         r"symmetric"):
        EP(beta=0.1, T1=10, T2=5, estimator="two_sided")
    with pytest.raises(ConfigError, match=r"unknown learning rule 'CEPP' \(did you mean CEP or EP\?\)"):
        build_rule("CEPP")
    with pytest.raises(ConfigError, match=r"T2=20 > T1=10"):
        BPTT(T1=10, T2=20)


def test_non_finite_state_is_reported():
    m = build_model("P_MLP", sizes=[4, 3, 2], act="tanh", loss="ce")  # identity output: can blow up
    with torch.no_grad():
        m.synapses[1].weight.fill_(float("inf"))
    x = torch.ones(2, 4)
    with pytest.raises(DivergenceError, match=r"non-finite state in layer 1 at step 1 of the free phase: the dy"):
        relax(m, x, m.init_state(x), 5)


@pytest.mark.parametrize("fast", [True, False])
def test_divergence_is_named_by_its_step_though_checked_once_per_phase(fast):
    """The state is read back once per phase (no host read per step); a diverged phase is replayed step by
    step, so the error names the first non-finite step. Here the identity output layer overflows at step 2:
    step 1 sets s2 = clip(4/2) = 1, then s3 = Σ 1e308·1 = inf."""
    m = build_model("P_MLP", sizes=[4, 3, 3, 2], loss="ce").double()
    with torch.no_grad():
        m.synapses[1].bias.fill_(4.0), m.synapses[2].weight.fill_(1e308), m.synapses[2].bias.zero_()
    x = torch.zeros(2, 4, dtype=torch.float64)
    assert torch.isfinite(relax(m, x, m.init_state(x), 1, fast=fast)[-1]).all()
    with pytest.raises(DivergenceError, match=r"non-finite state in layer 3 at step 2 of the free phase"):
        relax(m, x, m.init_state(x), 6, fast=fast)


def test_nudged_phase_needs_targets():
    m = build_model("P_MLP", sizes=[4, 3, 2])
    x = torch.ones(2, 4)
    with pytest.raises(ConfigError, match=r"needs targets y"):
        relax(m, x, m.init_state(x), 2, beta=0.5)


@pytest.mark.parametrize("argv, msg", [
    (["gdu", "P_NOPE", "--json", "x.json"], "eqbench: error: unknown model 'P_NOPE'"),
    (["gdu", "P_MLP", "--sizes", "784", "32", "10", "--json", "x.json"],
     "eqbench: error: input has shape (20, 64) but P_MLP expects (batch, 784)"),
    (["gdu", "P_MLP", "--act", "swish", "--json", "x.json"], "eqbench: error: unknown activation 'swish'"),
    (["gdu", "P_MLP", "--beta", "0", "--json", "x.json"], "eqbench: error: the EP estimator divides by β"),
])
def test_cli_prints_one_line(argv, msg, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(msg) and err.count("\n") == 1 and "Traceback" not in err
