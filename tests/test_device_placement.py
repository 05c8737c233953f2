"""Device placement, checked without a GPU.

A tensor that the training step creates without ``device=`` (``torch.zeros(shape)``, ``torch.tensor(v)``,
``torch.rand(...)`` without a generator on the input's device, ...) lands on the *default* device. On a
CPU-only machine that is the CPU, where the input is too, so the bug stays invisible until a run on a GPU
mixes a CPU tensor with CUDA ones. Here every training step runs with the default device set to ``meta``
while the model, its parameters and the batch (x, y) live on the CPU: any tensor created on the default
device is a meta tensor, and the step must fail.

Mixing a meta tensor with CPU ones does not always raise on its own: torch 2.14's CPU ``mm``/``linear``
and advanced indexing accept a meta operand and silently read garbage (``s @ torch.eye(n)`` returns a CPU
tensor of arbitrary values). So the step also runs under :class:`NoMetaTensors`, a dispatch mode that
raises at the first aten op taking or making a meta tensor (before the op runs), naming the op. Nothing in
a correct step ever touches the meta device, so the guard is exact: no false positives, and it catches a
misplaced tensor at its creation, wherever it would have been used. The negative controls at the bottom
show that both layers have power (a deliberately broken step raises under them and runs without them).

Coverage: one step (``rule.compute_gradients``), then one optimizer step (``build_optimizer``: SGD with
momentum and weight decay, Adam, or Laydevant's flip optimizer), then what the trainer does per epoch
(``rule.predict``, ``rule.diagnostics``, the model's diagnostics), for every registered model under every
rule that applies to it:

* energy models (P_MLP, P_CNN, VF_MLP, VF_CNN, HOPFIELD, BIN_MLP, BIN_CNN, SEQ_IMDB, SEQ_SNLI, in the
  variants that take different code paths) × EP (symmetric, one_sided, random_sign) and BPTT;
* on a subset, EP with persistent particles, asynchronous relaxation and the autograd (non closed-form)
  drive, and BPTT with the autograd drive — asynchronous mode only where the model allows it (HOPFIELD
  and the SEQ models raise a ConfigError for it by design);
* the feed-forward models: FC (with and without dropout) × PEPITA, BP, FA, DFA; CONV1FC × PEPITA, BP
  (FA and DFA train FC only, see eqbench.rules.forward and tests/test_forward.py).

EP's random-sign coin is drawn from the rule's own ``torch.Generator``, which lives on the CPU by design
(its state is checkpointed with the run, independent of the model's device). The draw used to create its
tensor on the default device (with a CPU generator: a meta tensor here, an error under a CUDA default
device); it now names the generator's device, and this matrix is what found it.
"""

from __future__ import annotations

import math

import pytest
import torch

from eqbench import graphs, relaxation
from eqbench.checks.device import MetaTensorError, meta_default_device
from eqbench.config import OptimizerConfig
from eqbench.models import MODELS, build_model
from eqbench.rules import ESTIMATORS
from eqbench.rules.algorithms import RULES, all_rules, build_rule
from eqbench.train import build_optimizer

D = torch.float64
B = 3  # batch size
T1, T2 = 3, 2


# ------------------------------------------------------------------------------------------------ the guard

# ------------------------------------------------------------------------------------------------ the cases
MLP = {"sizes": [6, 5, 3]}
CNN = {"in_shape": (1, 6, 6), "channels": [2, 3], "kernels": [3, 3], "paddings": [1, 1], "pools": "ma", "fc": [3]}
BIN_CNN = {"in_shape": (1, 6, 6), "channels": [2], "kernels": [3], "paddings": [1], "fc": [3]}

#: case id → (registry name, model options, optimizer, targets). ``optimizer``: sgd (momentum, weight
#: decay), adam or flip; targets: class indices (``int``) or float targets (``float``, (B, n_classes)).
ENERGY: dict[str, tuple[str, dict, str, str]] = {
    "P_MLP": ("P_MLP", MLP, "sgd", "int"),
    "P_MLP_ce_softmax": ("P_MLP", {"sizes": [6, 5, 4, 3], "loss": "ce", "softmax": True, "act": "my_sigmoid"},
                         "adam", "int"),
    "P_MLP_ce": ("P_MLP", {**MLP, "loss": "ce"}, "sgd", "int"),
    "P_MLP_float_targets": ("P_MLP", MLP, "sgd", "float"),
    "P_CNN": ("P_CNN", CNN, "sgd", "int"),
    "P_CNN_nopool_ce_softmax": ("P_CNN", {**CNN, "pools": "im", "fc": [4, 3], "loss": "ce", "softmax": True},
                                "adam", "int"),
    "P_CNN_avg_sigmoid": ("P_CNN", {**CNN, "pools": "aa", "act": "my_sigmoid"}, "sgd", "int"),
    "VF_MLP": ("VF_MLP", MLP, "sgd", "int"),
    "VF_MLP_same_update": ("VF_MLP", {"sizes": [6, 5, 4, 3], "same_update": True, "tied_init": True}, "sgd", "int"),
    "VF_CNN": ("VF_CNN", CNN, "sgd", "int"),
    "HOPFIELD": ("HOPFIELD", {"sizes": [6, 5, 4, 3]}, "sgd", "int"),
    "HOPFIELD_SW_gradient": ("HOPFIELD", {"sizes": [6, 5, 4, 3], "topology_type": "SW_no_intra", "p": 0.3,
                                          "bypass_mag": 0.3, "nudge": "gradient"}, "sgd", "int"),
    "HOPFIELD_SW_intra_regression": ("HOPFIELD", {"sizes": [6, 4, 4, 1], "topology_type": "SW_intra", "p": 0.3,
                                                  "bypass_mag": 0.3, "reference_rates": True}, "sgd", "float"),
    "BIN_MLP_W": ("BIN_MLP", MLP, "flip", "int"),
    "BIN_MLP_W_gradient_expand": ("BIN_MLP", {"sizes": [6, 5, 4], "nudge": "gradient", "expand_output": 2},
                                  "flip", "int"),
    "BIN_MLP_W_N": ("BIN_MLP", {"sizes": [6, 5, 4], "binary": "W_N", "expand_output": 2}, "flip", "int"),
    "BIN_MLP_none": ("BIN_MLP", {**MLP, "binary": "none"}, "sgd", "int"),
    "BIN_CNN_W": ("BIN_CNN", BIN_CNN, "flip", "int"),
    "BIN_CNN_W_N_pool3": ("BIN_CNN", {**BIN_CNN, "binary": "W_N", "pool_size": 3, "zero_bias": True}, "flip", "int"),
    "SEQ_IMDB": ("SEQ_IMDB", {"seq_len": 3, "dim": 4, "fc": [5, 2]}, "sgd", "int"),
    "SEQ_IMDB_cccp": ("SEQ_IMDB", {"seq_len": 3, "dim": 4, "fc": [5, 2], "retrieval": "cccp"}, "sgd", "int"),
    "SEQ_SNLI": ("SEQ_SNLI", {"seq_len": 2, "dim": 4, "fc": [5, 3]}, "sgd", "int"),
    "DCHN": ("DCHN", {"in_shape": (1, 8, 8), "channels": [2, 3]}, "sgd", "int"),
    "SEQ_SNLI_cccp": ("SEQ_SNLI", {"seq_len": 2, "dim": 4, "fc": [5, 3], "retrieval": "cccp"}, "sgd", "int"),
}

FEEDFORWARD: dict[str, tuple[str, dict, str, str]] = {
    "FC": ("FC", {"sizes": [6, 5, 4, 3]}, "sgd", "int"),
    "FC_dropout_tanh": ("FC", {"sizes": [6, 5, 4, 3], "keep": 0.7, "act": "tanh"}, "sgd", "int"),
    "CONV1FC": ("CONV1FC", {"in_shape": (1, 6, 6), "n_classes": 3, "channels": 2, "kernel": 3}, "sgd", "int"),
}
ALL_CASES = {**ENERGY, **FEEDFORWARD}

#: rule id → (registry name, options); EP's seed is pinned so random_sign draws both signs over the cases
EP_RULES = {f"EP-{est}": ("EP", {"beta": 0.5, "T1": T1, "T2": T2, "estimator": est}) for est in ESTIMATORS
            if est != "holomorphic"}  # holomorphic EP needs a holomorphic model: an extra variant below
BASE_ENERGY_RULES = {**EP_RULES, "BPTT": ("BPTT", {"T1": T1, "T2": T2})}
EXTRA_RULES = {
    "EP-persistent": ("EP", {"beta": 1.0, "T1": T1, "T2": T2, "estimator": "random_sign", "persistent": True}),
    "EP-async": ("EP", {"beta": 0.5, "T1": T1, "T2": T2, "estimator": "symmetric", "mode": "async"}),
    "EP-autograd": ("EP", {"beta": 0.5, "T1": T1, "T2": T2, "estimator": "one_sided", "closed_form": False}),
    "BPTT-autograd": ("BPTT", {"T1": T1, "T2": T2, "closed_form": False}),
    "BPTT-async": ("BPTT", {"T1": T1, "T2": T2, "mode": "async"}),
    "EP-holomorphic": ("EP", {"beta": 0.5, "T1": T1, "T2": T2, "estimator": "holomorphic", "points": 3}),
    "CpL": ("CpL", {"eta": 0.5, "T1": T1, "T2": T2}),
    # Scellier et al. 2023's seven algorithms by their names, with the paper's asynchronous minimiser
    **{name: (name, {("eta" if "CpL" in name else "beta"): 0.5, "T1": T1, "T2": T2, "mode": "async"})
       for name in ("PEP", "NEP", "CEP", "PCpL", "NCpL", "CCpL")},
    "CL": ("CL", {"T1": T1, "T2": T2, "mode": "async"}),
}
#: the extra rule variants, each on the cases whose code paths differ (async: not HOPFIELD nor SEQ_*,
#: which relax synchronously by design and raise a ConfigError)
EXTRA: dict[str, list[str]] = {
    "EP-persistent": ["HOPFIELD_SW_gradient", "HOPFIELD_SW_intra_regression", "P_MLP", "BIN_MLP_W_N", "SEQ_IMDB"],
    "EP-async": ["P_MLP", "P_CNN", "VF_CNN", "BIN_MLP_W", "BIN_CNN_W_N_pool3"],
    "EP-autograd": ["P_MLP", "P_CNN_nopool_ce_softmax", "VF_MLP", "VF_CNN", "HOPFIELD", "BIN_MLP_W_N",
                    "BIN_CNN_W"],
    "BPTT-autograd": ["P_CNN", "VF_MLP", "HOPFIELD_SW_gradient", "BIN_MLP_W_gradient_expand", "BIN_CNN_W_N_pool3"],
    "BPTT-async": ["P_MLP", "VF_CNN", "BIN_MLP_W_N"],
    # the complex copy of the model, avg pooling on complex states, the complex cross-entropy of a softmax readout
    "EP-holomorphic": ["P_MLP_ce_softmax", "P_CNN_avg_sigmoid"],
    # the clamped relaxation (not for a softmax readout, which coupled learning refuses)
    "CpL": ["P_MLP", "P_CNN", "VF_MLP", "BIN_MLP_W"],
    **{name: ["DCHN", "P_MLP"] for name in ("PEP", "NEP", "CEP", "PCpL", "NCpL", "CCpL", "CL")},
}
#: forward-only rules and the models they train (FA and DFA: FeedForward only)
FORWARD_RULES = {"PEPITA": ["FC", "FC_dropout_tanh", "CONV1FC"], "BP": ["FC", "FC_dropout_tanh", "CONV1FC"],
                 "FA": ["FC", "FC_dropout_tanh"], "DFA": ["FC", "FC_dropout_tanh"]}

COMBOS: list[tuple[str, str, str, dict]] = (
    [(case, rid, *BASE_ENERGY_RULES[rid]) for case in ENERGY for rid in BASE_ENERGY_RULES]
    + [(case, rid, *EXTRA_RULES[rid]) for rid, cases in EXTRA.items() for case in cases]
    + [(case, name, name, {}) for name, cases in FORWARD_RULES.items() for case in cases]
)


def _build(case: str):
    """(model, x, y) on the CPU in float64, built outside the meta context."""
    name, kw, _, targets = ALL_CASES[case]
    torch.manual_seed(0)
    model = build_model(name, **kw).to(D)
    x = torch.rand(B, *model.in_shape, dtype=D)
    if targets == "float":
        y = torch.rand(B, model.n_classes, dtype=D)
    else:
        y = torch.arange(B) % model.n_classes
    return model, x, y


def _optimizer(model, kind: str) -> torch.optim.Optimizer:
    n = len(model.layer_parameters())
    if kind == "flip":
        cfg = OptimizerConfig("flip", lrs=[0.05] * n, gammas=[0.5] * n, thresholds=[1e-6] * n, lrs_alpha=[1e-3] * n)
    else:
        cfg = OptimizerConfig(kind, lrs=[0.05] * n, wds=[1e-3] * n, momentum=0.9)
    return build_optimizer(model, cfg)


def _on_cpu(what: str, t: torch.Tensor, dtype: torch.dtype | None = D) -> None:
    assert t.device.type == "cpu", f"{what} is on {t.device}, not on the input's device (cpu)"
    if dtype is not None:
        assert t.dtype == dtype, f"{what} has dtype {t.dtype}, not the input's {dtype}"


# ------------------------------------------------------------------------------------------------ the test
pytestmark = pytest.mark.usefixtures("one_thread")


def test_registries_are_covered():
    """Every registered model and every registered rule appears in the matrix (a new one must be added)."""
    models = {ALL_CASES[case][0] for case, *_ in COMBOS}
    rules = {rule for _, _, rule, _ in COMBOS}
    assert models == set(MODELS), f"models without a device-placement case: {set(MODELS) - models}"
    assert rules == set(all_rules()), f"rules without a device-placement case: {set(all_rules()) - rules}"
    assert set(RULES) <= rules
    for est in ESTIMATORS:
        assert any(rule == "EP" and kw.get("estimator") == est for _, _, rule, kw in COMBOS), est


@pytest.mark.parametrize("case, rule_id, rule_name, rule_kw",
                         [pytest.param(*c, id=f"{c[0]}-{c[1]}") for c in COMBOS])
def test_training_step_creates_nothing_on_the_default_device(case, rule_id, rule_name, rule_kw):
    model, x, y = _build(case)
    rule = build_rule(rule_name, **rule_kw)
    opt = _optimizer(model, ALL_CASES[case][2])
    persistent = rule_kw.get("persistent", False)
    kw = {"key": "train/0"} if persistent else {}

    with meta_default_device():
        info = rule.compute_gradients(model, x, y, **kw)
        opt.step()
        if persistent:  # the second visit of the batch starts from its particle (and the sign coin moves on)
            info = rule.compute_gradients(model, x, y, **kw)
            opt.step()
        out, acts = rule.predict(model, x, **({"key": "test/0"} if persistent else {}))
        diag = rule.diagnostics(model, x, y)
        with torch.no_grad():  # what the trainer reads of the model per batch, per epoch and per run
            batch = model.batch_metrics()
            extras = [*batch.values(), *model.epoch_metrics([batch] if batch else []).values(),
                      *model.run_metrics().values()]

    # what came out lives where the input lives, in its dtype
    _on_cpu("output", info["output"])
    _on_cpu("loss", info["loss"])
    assert info["loss"].shape == (B,)
    for k, s in enumerate(info.get("free", [])):
        _on_cpu(f"free state {k}", s)
    _on_cpu("predicted output", out)
    for k, a in enumerate(acts):
        _on_cpu(f"activation {k}", a)
    for n, p in model.named_parameters():
        _on_cpu(f"parameter {n}", p)
        if p.grad is not None:
            _on_cpu(f"grad of {n}", p.grad)
    for n, b in model.named_buffers():
        _on_cpu(f"buffer {n}", b, dtype=None)
    for state in opt.state.values():
        for k, v in state.items():
            if isinstance(v, torch.Tensor) and v.dim():
                _on_cpu(f"optimizer state {k}", v)
    if persistent:
        for key, particle in rule.state_dict()["particles"].items():
            for s in particle:
                _on_cpu(f"particle {key}", s)
    assert all(isinstance(v, float) for v in diag.values())
    assert all(isinstance(v, (int, float)) and not math.isnan(v) for v in extras if v is not None)
    # the step did something: finite outputs, gradients written, and the optimizer stepped (its state exists)
    assert bool(torch.isfinite(info["loss"]).all()) and bool(torch.isfinite(out).all())
    assert all(p.grad is not None for p in model.parameters())
    assert opt.state, "the optimizer kept no state: did it step?"


# ------------------------------------------------------------------------------------------------ negative controls
def _broken_step(s: torch.Tensor) -> torch.Tensor:
    return s + torch.zeros(s.shape)  # BUG (deliberate): no device=, so it lands on the default device


def _broken_matmul(s: torch.Tensor) -> torch.Tensor:
    return s @ torch.eye(s.shape[1], dtype=s.dtype)  # BUG (deliberate): no device=


def test_negative_control_meta_default_device_catches_a_misplaced_tensor():
    s = torch.rand(B, 4, dtype=D)
    assert torch.equal(_broken_step(s), s)  # without the context the bug is invisible on a CPU-only machine
    assert torch.equal(_broken_matmul(s), s)
    with pytest.raises(RuntimeError, match="meta"):  # the bare meta default device: the add raises by itself
        with meta_default_device(guard=False):
            _broken_step(s)
    for broken in (_broken_step, _broken_matmul):  # with the guard, also the matmul (which torch lets through)
        with pytest.raises(MetaTensorError, match="meta"):
            with meta_default_device():
                broken(s)
    with meta_default_device():  # and a correct version passes under the same guard
        assert torch.equal(s + torch.zeros(s.shape, device=s.device, dtype=s.dtype), s)
        assert torch.equal(s + s.new_zeros(s.shape), s)


class _BrokenInitState:
    """A model whose free phase starts from ``torch.zeros`` on the default device (the classic GPU bug)."""

    def init_state(self, x):
        x = self.check_input(x)
        return [torch.zeros((x.shape[0], *shape), dtype=x.dtype) for shape in self.state_shapes()]


@pytest.mark.parametrize("rule_id", [*BASE_ENERGY_RULES])
def test_negative_control_a_broken_model_fails_the_real_step(rule_id):
    """The same check as the matrix, through the real rules, on a P_MLP whose init_state forgets device=:
    it trains without the context and fails under it."""
    from eqbench.models.layered import LayeredEP

    broken_cls = type("BrokenPMLP", (_BrokenInitState, LayeredEP), {})
    torch.manual_seed(0)
    model = broken_cls((6,), fc=[5, 3], name="P_MLP").to(D)
    x, y = torch.rand(B, 6, dtype=D), torch.arange(B) % 3
    name, kw = BASE_ENERGY_RULES[rule_id]
    info = build_rule(name, **kw).compute_gradients(model, x, y)
    _on_cpu("output", info["output"])
    with pytest.raises(MetaTensorError, match="meta"):
        with meta_default_device():
            build_rule(name, **kw).compute_gradients(model, x, y)


# ------------------------------------------------------------------------------------------------ CUDA graphs
RELAXING = [c for c in COMBOS if c[2] not in FORWARD_RULES]


def _host_read_checked(monkeypatch) -> list:
    """Every relaxation phase run from now on runs under eqbench.graphs.no_host_reads; returns the list of calls."""
    real, calls = relaxation.phase_function, []

    def checked(*args, **kwargs):
        phase = real(*args, **kwargs)

        def run(*a, **kw):
            calls.append(args[1])
            with graphs.no_host_reads():
                return phase(*a, **kw)
        return run

    monkeypatch.setattr(relaxation, "phase_function", checked)
    return calls


@pytest.mark.parametrize("case, rule_id, rule_name, rule_kw",
                         [pytest.param(*c, id=f"{c[0]}-{c[1]}") for c in RELAXING])
def test_relaxations_read_nothing_back_to_the_host(case, rule_id, rule_name, rule_kw, monkeypatch):
    """What lets a CUDA graph record a phase, checked on the CPU for every energy model × every rule that relaxes:
    no step reads a tensor's value back to the host (on a GPU, a synchronisation per step, which also stops a
    capture: the targets' range check once ran at every nudged step). Targets and the result are checked outside
    the phases, once."""
    calls = _host_read_checked(monkeypatch)
    model, x, y = _build(case)
    rule = build_rule(rule_name, **rule_kw)
    kw = {"key": "train/0"} if rule_kw.get("persistent", False) else {}
    rule.compute_gradients(model, x, y, **kw)
    rule.predict(model, x, **kw)
    assert calls, "no phase ran through relax's phase_function"


def test_negative_control_a_host_read_in_a_step_is_found(monkeypatch):
    _host_read_checked(monkeypatch)
    model, x, y = _build("P_MLP")

    def reads_the_host(s, u):
        float(u[0].sum())
        return type(model).update(model, s, u)

    model.update = reads_the_host
    with pytest.raises(graphs.HostRead, match="aten::_local_scalar_dense"):
        build_rule("EP", beta=0.5, T1=T1, T2=T2, estimator="symmetric", closed_form=False).compute_gradients(
            model, x, y)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch.cuda.is_available() is False)")
@pytest.mark.parametrize("case, rule_id, rule_name, rule_kw",
                         [pytest.param(*c, id=f"{c[0]}-{c[1]}") for c in RELAXING])
def test_cuda_graphs_change_no_number(case, rule_id, rule_name, rule_kw):
    """Every energy model × every rule that relaxes, on a GPU in float64: two training steps (the capture, then a
    replay after the optimizer's in-place update of the weights) and an evaluation give the same losses,
    gradients, weights and outputs with ``cuda_graphs`` as without (eqbench.graphs)."""
    persistent = rule_kw.get("persistent", False)
    runs = []
    for on in (False, True):
        model, x, y = _build(case)
        model, x, y = model.cuda(), x.cuda(), y.cuda()
        rule = build_rule(rule_name, **rule_kw)
        opt = _optimizer(model, ALL_CASES[case][2])
        graphs.enable(on)
        try:
            seen = []
            for _ in range(2):
                info = rule.compute_gradients(model, x, y, **({"key": "train/0"} if persistent else {}))
                seen += [info["loss"], *(p.grad for p in model.parameters())]
                opt.step()
            seen += [rule.predict(model, x, **({"key": "test/0"} if persistent else {}))[0], *model.parameters()]
            runs.append([t.detach().cpu() for t in seen])
            assert not on or graphs.captured(model), "no relaxation went through a graph"
        finally:
            graphs.enable(False)
            graphs.clear()
    for a, b in zip(*runs):
        torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12)
