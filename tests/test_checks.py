"""The checks' own contracts, beyond the theorem suites: the GDU report a user reads (API, ``eqbench gdu`` JSON), the
generic sign-flipped control, device placement's verdicts, and the convergence, Φ-trace and contraction helpers."""

from __future__ import annotations

import json
import math

import pytest
import torch

from eqbench.checks.controls import FlippedPEPITA, FlippedSignEP, SignFlipped
from eqbench.checks.device import MetaTensorError, device_placement, meta_default_device
from eqbench.checks.energy import (
    contraction_scale,
    convergence,
    coupling_matrix,
    coupling_norm,
    phi_trace,
    roundoff_tol,
)
from eqbench.checks.gdu import OrderSweep, gdu_check
from eqbench.checks.order import fit_slope
from eqbench.cli import main
from eqbench.errors import ConfigError
from eqbench.models import build_model
from eqbench.relaxation import Trace, relax
from eqbench.rules import EP
from eqbench.rules.forward import PEPITA

pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp(sizes=(12, 8, 5), seed=0, **kw):
    torch.manual_seed(seed)
    model = build_model("P_MLP", sizes=list(sizes), **kw).double()
    x = torch.rand(4, sizes[0], dtype=torch.float64)
    return model, x, torch.arange(4) % sizes[-1]


def _dense_coupling_norm(model, x) -> float:
    """‖H‖₂ from the dense H (`coupling_matrix`, float64): the reference for `coupling_norm`."""
    H = coupling_matrix(model, x)
    return float(torch.linalg.eigvalsh(0.5 * (H + H.T)).abs().max())


# ------------------------------------------------------------------------------------------------------ GDU
def test_a_rule_without_per_step_updates_gets_one_line_from_the_gdu_check():
    """The GDU theorem compares per-step updates; a rule that has none (coupled learning: one contrast of two
    equilibria) is refused in one line naming the rule, not a traceback from inside the check."""
    from eqbench.rules import CoupledLearning

    model, x, y = _mlp()
    with pytest.raises(ConfigError) as e:
        gdu_check(model, x, y, CoupledLearning(eta=0.5, T1=20, T2=4), 0.01)
    assert str(e.value) == "CoupledLearning has no per-step updates (detailed_gradients) to compare with BPTT"


def test_gdu_check_passes_ep_fails_its_sign_flip_and_reports_what_it_ran():
    model, x, y = _mlp()
    rule = EP(beta=0.01, T1=200, T2=8)
    rep = gdu_check(model, x, y, rule, 0.01, tol=1e-3)
    assert (rep.variant, rep.beta, rep.T1, rep.T2, rep.dtype, rep.model) == \
        ("symmetric", 0.01, 200, 8, "float64", "P_MLP")
    assert rep.passed and rep.rel_error == max(l.rel_error for l in rep.layers)
    one = gdu_check(model, x, y, rule, 0.01, variant="one_sided", tol=1e-3)
    assert one.rel_error > 10 * rep.rel_error  # O(β) against O(β²) at β = 1e-2
    for control in (SignFlipped(rule), FlippedSignEP(beta=0.01, T1=200, T2=8)):
        flipped = gdu_check(model, x, y, control, 0.01, tol=1e-3)
        assert not flipped.passed and flipped.rel_error == pytest.approx(2.0, rel=1e-2)  # |−g − g| / |g|
    short = gdu_check(model, x, y, rule, 0.01, tol=1e-3, T1=3, T2=2)  # the step counts passed override the rule's
    assert (short.T1, short.T2) == (3, 2) and short.free_residual > rep.free_residual


def test_the_sign_flipped_control_negates_the_written_gradient_and_predicts_alike():
    model, x, y = _mlp()
    rule = EP(beta=0.1, T1=30, T2=5)
    info = rule.compute_gradients(model, x, y)
    grads = [p.grad.clone() for p in model.parameters()]
    flipped_info = SignFlipped(rule).compute_gradients(model, x, y)
    assert all(torch.equal(-g, p.grad) for g, p in zip(grads, model.parameters()))
    assert torch.equal(info["output"], flipped_info["output"])
    a, b = rule.predict(model, x), SignFlipped(rule).predict(model, x)
    assert torch.equal(a[0], b[0]) and all(torch.equal(s, t) for s, t in zip(a[1], b[1]))


def test_the_sign_flipped_control_of_a_persistent_rule_keeps_its_particles_by_batch():
    """The control passes the trainer's batch key on: its free phases start from the batch's particle as the wrapped
    rule's do."""
    model, x, y = _mlp()
    rule = EP(beta=0.1, T1=5, T2=2, persistent=True)
    SignFlipped(rule).compute_gradients(model, x, y, key="train/3")
    SignFlipped(rule).predict(model, x, key="test/1")
    assert set(rule.state_dict()["particles"]) == {"train/3", "test/1"}


def test_the_flipped_pepita_control_negates_pepitas_update_with_the_same_dropout_masks():
    torch.manual_seed(0)
    model = build_model("FC", sizes=[6, 5, 4, 3], keep=0.5).double()
    x, y = torch.rand(8, 6, dtype=torch.float64), torch.arange(8) % 3
    masks = model.sample_masks(8, dtype=torch.float64)
    rule = PEPITA()
    updates, logits = rule.layer_updates(model, x, y, masks)
    flipped, flipped_logits = FlippedPEPITA().layer_updates(model, x, y, masks)
    assert all(torch.equal(-u, f) for u, f in zip(updates, flipped)) and torch.equal(logits, flipped_logits)


def test_eqbench_gdu_writes_the_report_and_the_ladder(tmp_path, capsys):
    """``eqbench gdu --json --sweep``: per-layer errors, the worst layer's numbers and the β ladder's verdicts."""
    p = tmp_path / "gdu.json"
    assert main(["gdu", "P_MLP", "--sizes", "64", "16", "10", "--batch", "4", "--json", str(p), "--sweep"]) == 0
    d = json.loads(p.read_text())
    layers = d["layers"]
    assert list(layers) == ["s1", "s2", "synapses.0.weight", "synapses.0.bias", "synapses.1.weight",
                            "synapses.1.bias"]
    assert d["rel_error"] == max(v["rel_error"] for v in layers.values()) < 1e-3
    assert d["rel_error_step"] == max(v["rel_error_step"] for v in layers.values())
    assert d["sign_error"] == max(v["sign_error"] for v in layers.values())
    weights = [v for v in layers.values() if v["kind"] == "weights"]
    assert d["sign_error_live"] == sum(v["live_opposite"] for v in weights) / sum(v["live"] for v in weights)
    assert (d["estimator"], d["beta"], d["T1"], d["T2"], d["dtype"]) == ("symmetric", 0.01, 300, 10, "float64")
    ladder = d["ladder"]
    assert len(ladder["betas"]) == 11 and ladder["betas"][0] == 0.1
    for variant, order in (("one_sided", 1.0), ("symmetric", 2.0)):
        v = ladder["verdicts"][variant]
        assert v["verdict"] == "pass" and v["slope"] == pytest.approx(order, abs=0.1)  # ±10 % (the claims' band)
        fit = ladder["layers"][v["key"]][variant]
        hi, lo = fit["range"]
        idx = [i for i, b in enumerate(ladder["betas"]) if lo <= b <= hi]
        assert fit["slope"] == pytest.approx(fit_slope([ladder["betas"][i] for i in idx],
                                                       [fit["errors"][i] for i in idx]))
    out = capsys.readouterr().out
    assert "one_sided: pass, asymptotic range [" in out and "local orders:" in out


def test_order_sweep_reads_the_error_at_the_nearest_beta_and_judges_each_parameter():
    betas = [1e-1, 3e-2, 1e-2, 3e-3, 1e-3]
    floor = [1e-14 / b for b in betas]
    sweep = OrderSweep(betas, {2: {"w": [b * b for b in betas], "b": [3.0 for _ in betas]}},
                       {"w": floor, "b": floor})
    assert sweep.error_at(2, 1e-2) == 3.0 and sweep.error_at(2, 2e-3) == 3.0  # worst parameter, log-nearest β
    fits = sweep.fits(2)
    assert fits["w"].verdict == "pass" and fits["w"].slope == pytest.approx(2.0)
    assert fits["b"].verdict == "FAIL" and sweep.verdict(2).key == "b"  # an O(1) error settles at order 0


# --------------------------------------------------------------------------------------------- device placement
def test_a_tensor_made_on_the_default_device_is_named_by_the_op_that_made_or_used_it():
    s = torch.rand(3, 4)
    assert device_placement(lambda: s + torch.zeros_like(s)) is None
    assert device_placement(lambda: s + torch.zeros(s.shape)) == (
        "aten.zeros.default made a tensor on the meta (default) device: pass device= (and dtype=) of an existing "
        "tensor")
    # torch.tensor(data) bypasses the dispatcher when it creates its tensor: caught where it is used
    assert device_placement(lambda: s * torch.tensor(2.0)) == (
        "aten.mul.Tensor got a tensor on the meta (default) device: a tensor of this step was created without the "
        "device of its inputs")
    made_outside = torch.zeros(4, device="meta")  # e.g. a buffer of a module built under torch.device("meta")
    with pytest.raises(MetaTensorError, match=r"^aten.add.Tensor got a tensor on the meta"):
        with meta_default_device():
            torch.add(s, made_outside)
    out_meta = torch.zeros(3, 4, device="meta")
    with pytest.raises(MetaTensorError, match=r"^aten.mul.out got a tensor on the meta"):
        with meta_default_device():
            torch.mul(s, 2.0, out=out_meta)  # a keyword argument
    nested = torch.zeros(4, device="meta")
    with pytest.raises(MetaTensorError, match=r"^aten.cat.default got a tensor on the meta"):
        with meta_default_device():
            torch.cat([s[0], nested])  # inside an op's list argument


def test_device_placement_turns_torchs_own_meta_errors_into_one_line_and_lets_others_through():
    """A C++ extension may check devices itself and raise torch's RuntimeError naming the meta device: that is the
    same bug (its first line is the verdict); any other error is the step's own and propagates."""

    def extension_check():
        raise RuntimeError("Expected all tensors to be on the same device, but found meta and cpu!\n(details)")

    assert device_placement(extension_check) == ("a tensor of this step was created on the default device: "
                                                 "Expected all tensors to be on the same device, but found meta and "
                                                 "cpu!")

    def other_error():
        raise RuntimeError("size mismatch")

    with pytest.raises(RuntimeError, match="size mismatch"):
        device_placement(other_error)


# --------------------------------------------------------------------------------------- convergence and Φ
def test_convergence_reports_each_steps_residual_and_the_first_step_within_tolerance():
    model, x, _ = _mlp()
    rep = convergence(model, x, 12)
    trace = Trace()
    relax(model, x, model.init_state(x), 12, trace=trace)
    assert (rep.model, rep.mode, rep.n_steps, rep.residuals) == ("P_MLP", "sync", 12, list(trace.residual))
    assert rep.final_residual == rep.residuals[-1] != rep.residuals[-2]
    k = 5
    at = convergence(model, x, 12, tol=rep.residuals[k])  # residuals fall: step k + 1 (1-based) is the first
    assert at.first_converged_step == k + 1 and at.tol == rep.residuals[k]
    assert convergence(model, x, 12, tol=0.0).first_converged_step is None
    async_rep = convergence(model, x, 12, mode="async")
    trace = Trace()
    relax(model, x, model.init_state(x), 12, mode="async", trace=trace)
    assert async_rep.mode == "async" and async_rep.residuals == list(trace.residual) != rep.residuals
    assert convergence(model, x, 1).n_steps == 1
    with pytest.raises(ConfigError, match=r"^a convergence check needs at least one step, got 0$"):
        convergence(model, x, 0)


def test_the_default_tolerance_is_the_round_off_of_the_largest_sample_not_of_the_batch():
    """Copies of one sample in a batch must not loosen the tolerance (the state norm is per sample)."""
    model, x, _ = _mlp()
    one = convergence(model, x[:1], 20)
    four = convergence(model, x[:1].expand(4, -1).contiguous(), 20)
    assert one.tol == four.tol
    s = relax(model, x[:1], model.init_state(x[:1]), 20)
    assert one.tol == roundoff_tol(torch.float64, float(torch.cat([t.flatten() for t in s]).norm()))


def test_phi_trace_is_phi_beta_at_every_visited_state():
    model, x, y = _mlp()
    for beta, yy in ((0.0, None), (0.5, y)):
        trace = Trace(keep_states=True)
        relax(model, x, model.init_state(x), 6, beta=beta, y=yy, trace=trace)
        with torch.no_grad():
            expected = [float(model.phi(x, s, beta, yy).mean()) for s in trace.states]
        assert phi_trace(model, x, 6, beta=beta, y=yy) == expected
    assert phi_trace(model, x, 6, beta=0.5, y=y) != phi_trace(model, x, 6)


# --------------------------------------------------------------------------------------------- contraction
def test_coupling_norm_is_the_dense_spectral_norm_in_float64_and_float32():
    model, x, _ = _mlp(sizes=(7, 20, 15, 10))
    exact = _dense_coupling_norm(model, x)
    est = coupling_norm(model, x)
    assert est == pytest.approx(exact, rel=1e-12)  # state size 45 ≤ 100 Lanczos steps: exact to round-off
    assert coupling_norm(model, x) == est  # deterministic (a seeded start vector)
    f32 = coupling_norm(model.float(), x.float())
    assert f32 == pytest.approx(exact, rel=1e-5)  # float32 drives: ~1e-7 relative


def test_coupling_norm_of_two_coupled_units_is_the_weight():
    """P_MLP [3, 1, 1]: H = [[0, w], [w, 0]] with w the 1×1 top weight, so ‖H‖ = |w| (a 2-step Lanczos)."""
    model, x, _ = _mlp(sizes=(3, 1, 1))
    w = model.synapses[1].weight.item()
    assert coupling_norm(model, x) == pytest.approx(abs(w), rel=1e-14)
    assert torch.equal(coupling_matrix(model, x), torch.tensor([[0.0, w], [w, 0.0]], dtype=torch.float64))


@pytest.mark.parametrize("act, loss, lipschitz", [("sigmoid", "mse", 0.25), ("sigmoid", "ce", 1.0),
                                                  ("my_hard_sig", "mse", 0.5)])
def test_contraction_scale_divides_the_target_by_lipschitz_times_the_coupling(act, loss, lipschitz):
    """γ = q / (L_σ·‖H‖): L_σ the largest activation Lipschitz constant, where CE's linear output layer counts 1."""
    model, x, _ = _mlp(act=act, loss=loss)
    h = _dense_coupling_norm(model, x)
    assert contraction_scale(model, x) == pytest.approx(0.5 / (lipschitz * h), rel=1e-12)
    assert contraction_scale(model, x, target=0.1) == pytest.approx(0.1 / (lipschitz * h), rel=1e-12)


def test_contraction_scale_of_one_state_layer_is_one_and_bad_targets_are_refused():
    model, x, _ = _mlp(sizes=(6, 4))  # one state layer: no coupling, s ↦ σ(c) is constant
    assert coupling_norm(model, x) == 0.0 and contraction_scale(model, x) == 1.0
    for bad in (0.0, -0.5, math.inf, math.nan):
        with pytest.raises(ConfigError) as e:
            contraction_scale(model, x, target=bad)
        assert str(e.value) == f"the contraction factor must be positive and finite, got {bad}"


def _broken_closed_form(model):
    """``model`` with a closed-form drive twice the true ∂Φ/∂s: what a user's wrong closed form looks like."""
    true = type(model).closed_form_drive

    def doubled(x, s, beta=0.0, y=None, *, cache=None):
        return [2.0 * u for u in true(model, x, s, beta, y, cache=cache)]

    model.closed_form_drive = doubled
    return model


def test_coupling_norm_reads_phi_not_a_models_closed_form():
    """The docstring's promise: ‖H‖ comes from the autograd drive of Φ, so a wrong closed form cannot fool the
    contraction scale that the energy suites rely on."""
    model, x, _ = _mlp(sizes=(7, 9, 6))
    exact = _dense_coupling_norm(model, x)
    _broken_closed_form(model)
    assert coupling_norm(model, x) == pytest.approx(exact, rel=1e-12)
    assert model.drive(x, model.init_state(x))[0].abs().sum() > 0  # (the closed form is broken: the control)


def test_coupling_norm_leaves_the_global_rng_alone_and_fewer_iterations_reach_less():
    """Its start vector comes from its own seeded generator: a user's next random draw is what it would have
    been. Krylov iterates are never above ‖H‖ and reach it by m = n; ``iters`` reaches contraction_scale."""
    model, x, _ = _mlp(sizes=(7, 20, 15, 10))
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    coupling_norm(model, x)
    assert torch.equal(torch.rand(3), expected)
    h2, h = coupling_norm(model, x, iters=2), _dense_coupling_norm(model, x)
    assert h2 < h * (1 - 1e-6)
    assert contraction_scale(model, x, iters=2) == pytest.approx(0.5 / (0.5 * h2), rel=1e-12)  # my_hard_sig: L = ½


def test_convergence_relaxes_with_the_step_it_is_asked_for():
    """closed_form=False checks the authors' autograd step, not a model's closed form (here a broken one)."""
    model, x, _ = _mlp(sizes=(7, 9, 6))
    reference = convergence(model, x, 6)
    _broken_closed_form(model)
    # the autograd step is the closed form's to round-off (pinned by suites/properties)
    assert convergence(model, x, 6, closed_form=False).residuals == pytest.approx(reference.residuals, rel=1e-12)
    assert convergence(model, x, 6).residuals != pytest.approx(reference.residuals, rel=1e-3)


def test_a_gdu_report_with_a_tolerance_says_in_its_json_whether_it_passed():
    """The JSON of `eqbench gdu` (README: the layers' fields; ``passed`` when a tolerance was given)."""
    model, x, y = _mlp()
    rule = EP(beta=0.01, T1=200, T2=8)
    for tol, passed in ((1e-3, True), (1e-9, False)):
        d = gdu_check(model, x, y, rule, 0.01, tol=tol).to_dict()
        assert d["passed"] is passed and d["tol"] == tol
    d = gdu_check(model, x, y, rule, 0.01).to_dict()
    assert "passed" not in d
    for fields in d["layers"].values():
        assert set(fields) == {"kind", "rel_error", "rel_error_step", "rmse", "sign_error", "live", "live_opposite"}
