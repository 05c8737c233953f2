"""What every model factory tells a user and relies on: the one line for an option a factory does not take, the
reasons a model gives the checks it cannot serve, the optimizer groups, the feedback angles of the VF models, and the
shape of the sequence model's negative control (a model declaring nothing: tests/test_contract.py)."""

from __future__ import annotations

import math

import pytest
import torch

from eqbench.cases import DEFAULTS
from eqbench.checks.energy import contraction_scale
from eqbench.errors import ConfigError
from eqbench.models import MODELS, build_model, model_factories
from eqbench.models.sequence import ValuesUnlikeKeys, seq_imdb_values_unlike_keys
from eqbench.relaxation import relax


@pytest.mark.parametrize("name", sorted(model_factories()))
def test_an_option_the_factory_does_not_take_is_named_with_the_model(name):
    with pytest.raises(ConfigError) as e:
        build_model(name, colour="blue")
    assert str(e.value) == f"{name}: got an unexpected keyword argument 'colour'"


SEQ_ASYNC = ("SEQ_SNLI relaxes synchronously (Bal & Sengupta): every projection layer couples to the first fc "
             "layer, so there is no even/odd split")


@pytest.mark.parametrize("name, reason", [
    ("HOPFIELD", "HOPFIELD relaxes synchronously (forward Euler, Gammell et al.); skip connections join layers of "
                 "equal parity, so there is no asynchronous even/odd split"),
    ("SEQ_SNLI", SEQ_ASYNC),
])
def test_models_without_an_even_odd_split_refuse_the_asynchronous_mode_with_their_reason(name, reason):
    torch.manual_seed(0)
    model = build_model(name, **DEFAULTS[name]).double()
    x = torch.rand(2, *model.in_shape, dtype=torch.float64)
    with pytest.raises(ConfigError) as e:
        relax(model, x, model.init_state(x), 3, mode="async")
    assert str(e.value) == reason


@pytest.mark.parametrize("name", [n for n in DEFAULTS if n in MODELS])
def test_every_energy_model_declares_one_activation_per_state_layer(name):
    model = build_model(name, **DEFAULTS[name])
    assert len(model.activations()) == len(model.state_shapes())


def test_vf_angles_measure_each_feedback_against_its_forward_twin():
    """0° when B = W (tied), 180° when B = −W, 45° when B = W + C with C ⟂ W and ‖C‖ = ‖W‖ (Laborieux §A.2)."""
    torch.manual_seed(0)
    model = build_model("VF_MLP", sizes=[6, 5, 4, 3]).double()
    assert build_model("P_MLP", sizes=[6, 5, 3]).angles() == []
    forward = list(model.synapses)[1:]
    with torch.no_grad():
        for g, f in zip(model.feedbacks, forward):
            g.weight.copy_(f.weight)
        assert model.angles() == [0.0, 0.0]
        model.feedbacks[0].weight.copy_(-forward[0].weight)
        w = forward[1].weight
        c = torch.randn_like(w)
        c -= (c * w).sum() / (w * w).sum() * w
        model.feedbacks[1].weight.copy_(w + c * (w.norm() / c.norm()))
    a = model.angles()
    assert a[0] == 180.0 and a[1] == pytest.approx(45.0, abs=1e-9)
    assert all(math.isfinite(v) for v in a)


def test_the_sequence_control_is_seq_imdb_with_values_unlike_keys():
    """The negative control of the retrieval claim differs from SEQ_IMDB in its retrieval only."""
    cfg = DEFAULTS["SEQ_IMDB"]
    torch.manual_seed(0)
    real = build_model("SEQ_IMDB", **cfg)
    torch.manual_seed(0)
    control = seq_imdb_values_unlike_keys(**cfg)
    assert type(control) is ValuesUnlikeKeys and control.name == real.name == "SEQ_IMDB"
    assert control.state_shapes() == real.state_shapes() and control.in_shape == real.in_shape
    assert [(n, p.shape) for n, p in control.named_parameters()] == [(n, p.shape) for n, p in real.named_parameters()]
    assert all(torch.equal(a, b) for a, b in zip(control.parameters(), real.parameters()))
    g, keys = torch.rand(2, 1, cfg["dim"]), torch.rand(2, cfg["seq_len"], cfg["dim"])
    assert not torch.allclose(control.retrieve(g, keys), real.retrieve(g, keys))


@pytest.mark.parametrize("name, cfg, reason", [
    ("VF_MLP", {"sizes": [4, 3, 2]}, "it has feedback weights: its drive is not the gradient of a primitive"),
    ("P_CNN", {"in_shape": (1, 6, 6), "channels": [2], "kernels": [3], "pools": "m", "fc": [3]},
     "it has max pooling: Φ is not multilinear in the layers and the drive is not affine in s"),
])
def test_contraction_scale_says_why_a_layered_model_has_no_affine_drive(name, cfg, reason):
    model = build_model(name, **cfg).double()
    with pytest.raises(ConfigError) as e:
        contraction_scale(model, torch.rand(1, *model.in_shape, dtype=torch.float64))
    assert str(e.value) == f"contraction_scale needs a drive u = H·s + c with symmetric H; {name}: {reason}"


def test_binary_models_log_their_scales_and_real_valued_ones_nothing():
    binary = build_model("BIN_MLP", sizes=[6, 5, 3])
    assert binary.epoch_metrics([]) == {f"alpha/{k + 1}": a for k, a in enumerate(binary.alphas())}
    assert len(binary.epoch_metrics([])) == 2
    assert build_model("BIN_MLP", sizes=[6, 5, 3], binary="none").epoch_metrics([]) == {}


@pytest.mark.parametrize("name", [n for n in DEFAULTS if n in MODELS and not n.startswith("BIN")] + ["FC"])
def test_the_optimizer_trains_every_parameter_once_at_its_layers_rate_and_decay(name):
    """build_optimizer: each parameter in exactly one group, group k with lrs[k] and wds[k] (Laborieux §A.8)."""
    from eqbench.config import OptimizerConfig
    from eqbench.train import build_optimizer

    model = build_model(name, **DEFAULTS.get(name, {"sizes": [6, 5, 4]}))
    n = len(model.layer_parameters())
    lrs, wds = [0.1 * (k + 1) for k in range(n)], [1e-4 * (k + 1) for k in range(n)]
    opt = build_optimizer(model, OptimizerConfig("sgd", lrs, wds, 0.9))
    seen = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(seen) == sorted(id(p) for p in model.parameters())  # all of them, none twice
    assert [(g["lr"], g["weight_decay"]) for g in opt.param_groups] == list(zip(lrs, wds))


def test_hopfield_reference_rates_train_bypass_weights_and_biases_at_rate_one_without_decay():
    """Gammell et al.'s code (§C.5): only the inter-layer blocks get the per-layer rates and decays."""
    from eqbench.config import OptimizerConfig
    from eqbench.train import build_optimizer

    model = build_model("HOPFIELD", sizes=[4, 5, 3], reference_rates=True, topology_type="SW_intra", p=0.5, seed=1)
    opt = build_optimizer(model, OptimizerConfig("sgd", [0.1, 0.2], [1e-3, 2e-3]))
    groups = opt.param_groups
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(0.1, 1e-3), (0.2, 2e-3), (1.0, 0.0)]
    assert [g["params"] for g in groups[:2]] == [[w] for w in model.inter]
    assert sorted(id(p) for g in groups for p in g["params"]) == sorted(id(p) for p in model.parameters())


def test_hopfield_epoch_metrics_are_the_mean_rates_their_log_spread_and_dead_layers():
    """Gammell et al.'s Table 1 statistics of an epoch's per-batch correction rates; a layer that never learned
    makes the spread infinite, written as null and counted."""
    model = build_model("HOPFIELD", sizes=[4, 5, 3])
    bound = model.euler_step_bound()
    assert model.epoch_metrics([]) == {"step_bound": bound}
    batches = [{"rate/1": 1e-3, "rate/2": 1e-1}, {"rate/1": 3e-3, "rate/2": 3e-1}]
    out = model.epoch_metrics(batches)
    assert out == {"step_bound": bound, "rate/1": pytest.approx(2e-3), "rate/2": pytest.approx(2e-1),
                   "log_spread": pytest.approx(1.0), "dead_layers": 0}  # std of log10 (−2.7, −0.7) = 1
    dead = model.epoch_metrics([{"rate/1": 0.0, "rate/2": 0.1}])
    assert dead["log_spread"] is None and dead["dead_layers"] == 1


# ------------------------------------------------------------------------------------ max pooling with ties
def test_max_pool_ties_is_max_pooling_where_values_are_apart_and_the_first_position_where_they_tie():
    import torch.nn.functional as F

    from eqbench.models.pooling import max_pool_ties

    g = torch.Generator().manual_seed(0)
    z = torch.randn(2, 3, 7, 9, generator=g, dtype=torch.float64)  # odd sizes: the last row and column dropped
    tiny = torch.tensor(torch.finfo(torch.float64).tiny, dtype=torch.float64)
    for fmt in (torch.contiguous_format, torch.channels_last):
        v, i = max_pool_ties(z.contiguous(memory_format=fmt), 2, tiny)
        ref, ref_i = F.max_pool2d(z, 2, 2, return_indices=True)
        assert torch.equal(v, ref) and torch.equal(i, ref_i)
    # a 2×2 window holding 1, 1 + 1e-13, 1 − 1e-13, 1: within a gap of 1e-12 all tie, and the first position wins
    w = torch.tensor([[1.0, 1 + 1e-13], [1 - 1e-13, 1.0]], dtype=torch.float64).view(1, 1, 2, 2)
    v, i = max_pool_ties(w, 2, torch.tensor(1e-12, dtype=torch.float64))
    assert int(i) == 0 and float(v) == pytest.approx(1.0, abs=1e-15)
    v, i = max_pool_ties(w, 2, torch.tensor(1e-14, dtype=torch.float64))  # a gap below the differences: the max
    assert int(i) == 1 and float(v) == pytest.approx(1 + 1e-13, abs=1e-15)
    v, i = max_pool_ties(torch.zeros(1, 1, 3, 3, dtype=torch.float64), 3, tiny)  # exact zeros: the first position
    assert int(i) == 0 and float(v) == 0.0


def test_the_tie_gap_bounds_two_roundings_of_a_convolution():
    """Every output of a conv computed NCHW and NHWC (float64, full-mantissa weights, the ½ start) differs by less
    than the gap, which stays far below the O(α) spacing of distinct values."""
    import torch.nn.functional as F

    from eqbench.models.pooling import tie_gap

    g = torch.Generator().manual_seed(0)
    w = torch.randn(8, 4, 5, 5, generator=g, dtype=torch.float64) * (1 + 2**-10 / 3)
    b = torch.randn(8, generator=g, dtype=torch.float64)
    x = torch.full((4, 4, 14, 14), 0.5, dtype=torch.float64)
    a = F.conv2d(x, w, b, padding=2)
    c = F.conv2d(x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last), b,
                 padding=2)
    gap = float(tie_gap(x, w, b))
    assert 0 < float((a - c).abs().max()) < gap < 1e-10 * float(w.abs().amax())
