"""Gammell et al.'s Hopfield model: topology as the authors draw it, the step three ways, the nudges,
the EP update as the authors write it, per-layer rates, persistent particles, and its errors."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from eqbench import build_model, relax
from eqbench.config import RunConfig
from eqbench.errors import ConfigError
from eqbench.models.hopfield import NUDGES, TOPOLOGIES, HopfieldEP, log_spread, topology
from eqbench.rules import EP
from eqbench.testing import hopfield_config
from eqbench.train import Trainer, build_optimizer, build_parts

pytestmark = pytest.mark.usefixtures("float64_default")  # eqbench's pytest plugin (eqbench.testing.plugin)


def _model(**kw) -> HopfieldEP:
    cfg = {"sizes": [6, 5, 4, 5, 3], "topology_type": "SW_no_intra", "p": 0.3, "bypass_mag": 0.5, "seed": 1, **kw}
    return build_model("HOPFIELD", **cfg).double()


def test_topology_reproduces_the_authors_log():
    # results/diabetes_5layer_swni/log.txt of jgammell/equilibrium_propagation prints, for seed 0:
    # "Actual p: 0.100", "RMS W element: 0.052179", "RMS W_mask element: 0.092645", where their
    # rms(A) = sqrt(‖A‖_F / numel). The same RNG calls in the same order give the same matrix.
    W, mask, p = topology([10] * 6 + [1], "SW_no_intra", 0.1, 0.579, 0)
    rms = lambda a: np.sqrt(np.linalg.norm(a) / a.size)  # noqa: E731
    assert p == pytest.approx(0.1, abs=5e-4)
    assert rms(W) == pytest.approx(0.052179, abs=5e-7)
    assert rms(mask) == pytest.approx(0.092645, abs=5e-7)


@pytest.mark.parametrize("kind", TOPOLOGIES)
def test_weights_symmetric_masked_zero_diagonal(kind):
    m = _model(topology_type=kind)
    W, M = m.weights(), m.mask()
    assert torch.equal(W, W.T) and torch.equal(M, M.T)
    assert torch.all(W.diagonal() == 0) and torch.all(W[M == 0] == 0)
    o = m.offsets
    assert torch.all(M[: o[1], : o[1]] == 0)  # no input-input connections
    if kind == "MLFF":
        assert m.p_actual == 0 and not len(m.skip)
        for k in range(len(m.sizes) - 1):  # exactly the consecutive-layer blocks
            assert torch.all(M[o[k + 1]:o[k + 2], o[k]:o[k + 1]] == 1)
        assert int(M.sum()) == 2 * sum(a * b for a, b in zip(m.sizes[:-1], m.sizes[1:]))
    else:
        assert 0 < m.p_actual < 1 and len(m.skip)
    if kind == "SW_no_intra":  # rewiring moves connections, it does not add any
        assert int(M.sum()) == 2 * sum(a * b for a, b in zip(m.sizes[:-1], m.sizes[1:]))
        for j in range(1, len(m.sizes)):
            assert torch.all(M[o[j]:o[j + 1], o[j]:o[j + 1]] == 0)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(st.sampled_from(TOPOLOGIES), st.sampled_from(NUDGES), st.floats(-1.0, 1.0), st.integers(0, 100))
def test_fast_closed_form_and_autograd_steps_agree(kind, nudge, beta, seed):
    m = _model(topology_type=kind, nudge=nudge, seed=seed)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for b in m.bias:
            b.copy_(torch.randn(b.shape, generator=g) * 0.5)
    x, y = torch.rand(4, 6, generator=g), torch.randint(3, (4,), generator=g)
    s0 = [torch.rand(4, m.state_shapes()[0][0], generator=g)]
    fast = relax(m, x, s0, 25, beta=beta, y=y)
    closed = relax(m, x, s0, 25, beta=beta, y=y, fast=False)
    auto = relax(m, x, s0, 25, beta=beta, y=y, fast=False, closed_form=False)
    # 25 steps of a map with Lipschitz constant ≲ 2 from ≈1e-16 differences: ≤ 1e-16·2^25 ≈ 3e-9 at
    # worst; measured ≤ 1.5e-14
    assert torch.allclose(fast[0], closed[0], atol=1e-10, rtol=0)
    assert torch.allclose(auto[0], closed[0], atol=1e-10, rtol=0)


def test_reference_nudge_clamps_the_output_at_the_paper_setting():
    # ε = 0.5, β = +1: s_y ← s_y + 2εβ(y − s_y) = y after every step (baselines.md §2a)
    m = _model(nudge="reference", epsilon=0.5)
    x, y = torch.rand(3, 6), torch.tensor([0, 2, 1])
    s = relax(m, x, m.init_state(x), 7, beta=1.0, y=y)
    assert torch.equal(m.output(s), torch.eye(3)[y])


def test_reference_nudge_is_the_gradient_nudge_with_a_larger_beta():
    # at a fixed point (1 − 2εβ)u_y + 2β(y − s_y) = 0, i.e. the gradient nudge with β' = 2β / (1 − 2εβ)
    ref = _model(nudge="reference", topology_type="MLFF", epsilon=0.5)
    grad = _model(nudge="gradient", topology_type="MLFF", epsilon=0.5)
    grad.load_state_dict(ref.state_dict())
    with torch.no_grad():
        for p in list(ref.parameters()) + list(grad.parameters()):
            p.mul_(0.3)  # a contraction: the fixed point is unique and reached to round-off
    # a fixed input: in ~3 % of random draws the outputs saturate so that the two nudges land within 1e-4
    x, y = torch.rand(4, 6, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 1])
    for beta in (0.05, -0.2):
        bp = 2 * beta / (1 - 2 * 0.5 * beta)
        a = relax(ref, x, ref.init_state(x), 400, beta=beta, y=y)
        b = relax(grad, x, grad.init_state(x), 400, beta=bp, y=y)
        assert torch.allclose(a[0], b[0], atol=1e-12, rtol=0)
        c = relax(grad, x, grad.init_state(x), 400, beta=beta, y=y)
        assert not torch.allclose(a[0], c[0], atol=1e-4)  # and not the gradient nudge at β itself


def test_ep_update_is_the_authors_formula():
    # dW = mean_b (1/β)[ρ(s_c)ρ(s_c)ᵀ − ρ(s_f)ρ(s_f)ᵀ] ⊙ mask, dB = mean_b (1/β)(ρ(s_c) − ρ(s_f)), applied
    # as W += lr·dW, so the descent-form .grad is −dW on the stored lower triangle (Gammell §C.5)
    m = _model()
    x, y = torch.rand(4, 6), torch.tensor([0, 1, 2, 1])
    rule = EP(beta=0.7, T1=30, T2=6, estimator="one_sided")
    info = rule.compute_gradients(m, x, y)
    free = info["free"][0]
    clamped = relax(m, x, info["free"], 6, beta=0.7, y=y)[0]
    zc, zf = torch.cat([x, clamped], 1), torch.cat([x, free], 1)
    dW = (zc.T @ zc - zf.T @ zf) / (0.7 * 4) * m.mask()
    dB = (clamped - free).mean(0) / 0.7
    o = m.offsets
    for k, w in enumerate(m.inter):
        assert torch.allclose(w.grad, -dW[o[k + 1]:o[k + 2], o[k]:o[k + 1]], atol=1e-12)
    for j, w in m.skip.items():
        j = int(j)
        expected = torch.tril(-dW, -1)[o[j]:o[j + 1], :o[j + 1]] * getattr(m, f"skip_mask{j}")
        assert torch.allclose(w.grad, expected, atol=1e-12)
    assert torch.allclose(torch.cat([b.grad for b in m.bias]), -dB, atol=1e-12)
    rates = m.batch_metrics()  # what the trainer logs after the rule wrote .grad
    for k in range(len(m.inter)):
        n = float(getattr(m, f"inter_mask{k}").sum())
        assert rates[f"rate/{k + 1}"] == pytest.approx(float(dW[o[k + 1]:o[k + 2], o[k]:o[k + 1]].norm()) / n**0.5)


def test_log_spread():
    assert log_spread([1e-3, 1e-3, 1e-3]) == 0.0
    assert log_spread([1e-1, 1e-3]) == pytest.approx(1.0)  # std of (−1, −3)
    assert log_spread([1e-1, 0.0]) == float("inf")  # a layer that never learned, as log10(0) gives


def _opt(reference: bool):
    from eqbench.config import OptimizerConfig

    m = _model(reference_rates=reference)
    return m, build_optimizer(m, OptimizerConfig("sgd", [0.4, 0.3, 0.2, 0.1]))


def test_per_layer_rates_apply_to_every_connection_into_a_layer():
    m, opt = _opt(False)
    lr = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    for j in range(1, len(m.sizes)):
        assert lr[id(m.inter[j - 1])] == lr[id(m.bias[j - 1])] == [0.4, 0.3, 0.2, 0.1][j - 1]
        if str(j) in m.skip:
            assert lr[id(m.skip[str(j)])] == [0.4, 0.3, 0.2, 0.1][j - 1]


def test_reference_rates_leave_bypass_and_biases_at_one():
    m, opt = _opt(True)
    lr = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert [lr[id(w)] for w in m.inter] == [0.4, 0.3, 0.2, 0.1]
    assert all(lr[id(p)] == 1.0 for p in [*m.skip.values(), *m.bias])
    assert len(lr) == len(list(m.parameters()))


def test_persistent_particles_continue_where_they_stopped():
    m = _model()
    x = torch.rand(3, 6)
    rule = EP(beta=1.0, T1=5, T2=2, persistent=True)
    first = rule.free_phase(m, x, key="train/0")
    second = rule.free_phase(m, x, key="train/0")
    assert torch.allclose(second[0], relax(m, x, first, 5)[0])
    assert torch.allclose(rule.free_phase(m, x, key="train/1")[0], first[0])  # another batch: from zeros
    assert torch.allclose(rule.free_phase(m, x)[0], first[0])  # no key: from zeros, nothing stored
    assert set(rule.state_dict()["particles"]) == {"train/0", "train/1"}


def test_trainer_writes_costs_rates_and_spread(tmp_path):
    res = Trainer(RunConfig.from_dict(hopfield_config(epochs=1)), tmp_path, progress=False).fit()
    final = res["final"]
    assert {"train_cost", "test_cost", "log_spread", "step_bound", "rate/1", "rate/3"} <= set(final)
    assert "test_acc" not in final and 0 < final["test_cost"] < 0.5
    assert (tmp_path / "batch_metrics.png").exists()


def _rows(folder) -> list[dict]:
    """metrics.jsonl without the timings."""
    lines = (folder / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "time_s"} for line in lines]


def test_the_small_world_topology_follows_the_run_seed():
    """The rewiring is drawn with NumPy's RNG, not torch's: build_parts hands HOPFIELD the run's seed, so two
    seeds give two topologies and one seed the same one, and a seed in the model config itself wins."""
    def masks(run_seed: int, **model) -> list[torch.Tensor]:
        cfg = hopfield_config(seed=run_seed)
        cfg["model"] = {**cfg["model"], **model}
        state = build_parts(RunConfig.from_dict(cfg))[0].state_dict()
        return [v for k, v in state.items() if "mask" in k]

    def same(a, b) -> bool:
        return all(torch.equal(u, v) for u, v in zip(a, b))

    assert same(masks(1), masks(1)) and not same(masks(1), masks(2))
    assert same(masks(1, seed=5), masks(2, seed=5))


def test_initial_eval_is_an_epoch_zero_row_that_leaves_training_alone(tmp_path):
    """Gammell et al. evaluate the test set once before training: an epoch-0 row with the untrained network's
    test cost. It gives the test particles one more free phase (so later test costs differ) but touches neither
    the training batches' particles nor any RNG: the training is the same as without it."""
    class Stop(Exception):
        pass

    def stop(epoch, batch):
        if epoch == 1 and batch == 2:  # mid second epoch: resume must neither repeat nor lose the epoch-0 row
            raise Stop

    cfg = RunConfig.from_dict(hopfield_config(epochs=2, initial_eval=True))
    with pytest.raises(Stop):
        Trainer(cfg, tmp_path / "cut", progress=False, on_batch=stop).fit()
    Trainer.resume(tmp_path / "cut", progress=False).fit()
    t0 = time.perf_counter()
    res = Trainer(cfg, tmp_path / "with", progress=False).fit()
    wall = time.perf_counter() - t0
    Trainer(RunConfig.from_dict(hopfield_config(epochs=2)), tmp_path / "without", progress=False).fit()
    with_, without = _rows(tmp_path / "with"), _rows(tmp_path / "without")
    assert _rows(tmp_path / "cut") == with_
    assert [r["epoch"] for r in with_] == [0, 1, 2] and set(with_[0]) == {"epoch", "test_cost"}
    times = [json.loads(line)["time_s"] for line in (tmp_path / "with" / "metrics.jsonl").read_text().splitlines()]
    assert all(t >= 0 for t in times) and sum(times) <= wall  # each row's own duration, parts of the run's
    assert res["mean_epoch_s"] == sum(times[1:]) / 2  # the training epochs' mean: epoch 0 only evaluated
    untrained = Trainer(cfg, tmp_path / "fresh", progress=False)
    assert with_[0]["test_cost"] == untrained.evaluate()
    for a, b in zip(with_[1:], without):
        assert a["train_cost"] == b["train_cost"] and a["train_loss"] == b["train_loss"]
        assert a["test_cost"] != b["test_cost"]  # the test particles started one free phase further on
    assert res["best_test_cost"] == min(r["test_cost"] for r in with_[1:])  # epoch 0 is no candidate
    assert res["final"]["epoch"] == 2


@pytest.mark.parametrize("kw, msg", [
    ({"topology_type": "SW"}, "unknown topology 'SW'; known: MLFF, SW_no_intra, SW_intra"),
    ({"nudge": "half"}, "unknown nudge 'half'"),
    ({"p": 1.5}, "rewiring probability p must lie in"),
    ({"epsilon": 0.0}, "Euler step epsilon must be positive"),
    ({"sizes": [5]}, "at least an input and an output layer"),
])
def test_model_errors(kw, msg):
    with pytest.raises(ConfigError, match=msg):
        _model(**kw)


def test_persistent_needs_fixed_batches(tmp_path):
    cfg = hopfield_config()
    cfg["data"] = {**cfg["data"], "shuffle": "epoch"}
    with pytest.raises(ConfigError) as e:
        Trainer(RunConfig.from_dict(cfg), tmp_path, progress=False)
    assert str(e.value) == "persistent particles belong to fixed batches: set data.shuffle to 'once' or 'none' " \
                           "(got 'epoch')"


def _tiny_registry(folder) -> str:
    """A registry with one small HOPFIELD baseline (diabetes, 20 free steps), so a sweep takes seconds."""
    import yaml

    cfg = hopfield_config(epochs=1)
    entry = {"id": "demo2021/diabetes_gammell/sw", "dataset": "diabetes_gammell", "architecture": "10-8-8-1 SW",
             "algorithm": "EP", "variant": "small", "metric": "test_error", "value": 0.04, "unit": "cost",
             "epochs": 1, "provenance": "REPO-LOG", "source": "made up for a test",
             "scales": {"paper": {"config": cfg}}}
    paper = {"key": "demo2021", "title": "A demo", "authors": "Nobody", "year": 2021, "venue": "Nowhere"}
    (folder / "demo2021.yaml").write_text(yaml.safe_dump({"paper": paper, "baselines": [entry]}))
    return entry["id"]


def test_p_sweep_writes_the_curve_and_reuses_finished_points(tmp_path, monkeypatch):
    import json

    from eqbench.sweep import FIG4_PS, p_sweep, published_points

    assert FIG4_PS[:3] == [0.0, 0.0001, 0.000137] and FIG4_PS[-1] == 0.078805 and len(FIG4_PS) == 23
    assert [d["p"] for d in published_points()][:2] == [0.0, 1e-4]  # the real registry's Figure-4 points
    monkeypatch.setenv("EQBENCH_BASELINES_DIR", str(tmp_path))
    bid = _tiny_registry(tmp_path)
    kw = {"seeds": 2, "epochs": 1, "results": str(tmp_path / "res"), "out": str(tmp_path / "fig"), "progress": False}
    curve = p_sweep(bid, "paper", [0.0, 0.3], **kw)
    assert [d["p"] for d in curve["points"]] == [0.0, 0.3]
    assert curve["points"][0]["p_actual"] == [0.0, 0.0] and 0.1 < curve["points"][1]["p_actual"][0] < 0.5
    assert all(len(d["per_seed"]) == 2 and d["std"] > 0 for d in curve["points"])
    assert curve["published"] == []  # no Figure-4 points for this dataset
    assert json.loads((tmp_path / "fig" / "curve.json").read_text()) == json.loads(json.dumps(curve))
    assert (tmp_path / "fig" / "curve.png").exists()
    done = sorted((tmp_path / "res").rglob("result.json"))
    assert len(done) == 4
    stamps = [p.stat().st_mtime_ns for p in done]
    assert p_sweep(bid, "paper", [0.0, 0.3], **kw) == curve
    assert [p.stat().st_mtime_ns for p in done] == stamps  # finished points are not retrained


def test_p_sweep_errors():
    from eqbench.sweep import p_sweep

    with pytest.raises(ConfigError, match="rewires a HOPFIELD model"):
        p_sweep("laborieux2021/mnist5k/mlp-ep-symmetric-mse", "ci")
    with pytest.raises(ConfigError, match=r"must lie in \[0, 1\]"):
        p_sweep("gammell2021/diabetes/5layer-swni", "paper", [1.5])


def _run_json(bid: str, values: list[float], seeds: list[int] | None = None) -> dict:
    seeds = list(range(len(values))) if seeds is None else seeds
    return {"id": bid, "scale": "paper", "metric": "test_error", "unit": "cost",
            "measured": {"per_seed": values, "seeds": seeds}}


def test_topology_claim_verdicts():
    from eqbench.stats import compare_runs, topology_claims

    mlff = _run_json("g/d/5layer-mlff", [0.050, 0.040, 0.060, 0.045])
    better = _run_json("g/d/5layer-swni", [0.045, 0.036, 0.055, 0.041])  # lower on every paired seed
    (c,) = topology_claims([mlff, better])
    assert (c["a"], c["b"], c["test"], c["verdict"]) == ("g/d/5layer-swni", "g/d/5layer-mlff", "paired t", "holds")
    assert c["difference"] == pytest.approx(-0.0045) and c["p_value"] < 0.01
    # negative control: the same numbers the other way round cannot hold
    assert compare_runs(mlff, better)["verdict"] == "fails"
    # unpaired seeds: Welch's test, and this small a shift over a large spread is not significant
    welch = compare_runs(_run_json("x-swni", [0.045, 0.06, 0.03], [5, 6, 7]), mlff)
    assert welch["test"] == "Welch t" and welch["verdict"] == "not significant"
