"""CUDA graphs of relaxations (eqbench.graphs): a replay equals the eager loop, follows the weights, falls back.

The equality of graphed and eager training steps for every model × rule of the device-placement matrix is in
tests/test_device_placement.py (``test_cuda_graphs_change_no_number``); here: the switch, its errors, and the
graph machinery itself. The GPU tests skip cleanly without CUDA.
"""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from eqbench import build_model, graphs, relax
from eqbench.config import RunConfig
from eqbench.errors import ConfigError, DivergenceError
from eqbench.estimate import estimate
from eqbench.train import build_parts, set_precision

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                   reason="needs a CUDA device (torch.cuda.is_available() is False)")
CFG = {"model": {"name": "P_MLP", "sizes": [64, 8, 10]}, "rule": {"name": "EP", "beta": 0.5, "T1": 5, "T2": 2},
       "optimizer": {"name": "sgd", "lrs": [0.1, 0.1]}, "data": {"name": "digits", "batch_size": 8}, "epochs": 1}


@pytest.fixture(autouse=True)
def graphs_off():
    yield
    graphs.enable(False)
    graphs.clear()


def test_cuda_graphs_on_a_cpu_run_is_one_line():
    with pytest.raises(ConfigError) as e:
        build_parts(RunConfig.from_dict({**CFG, "cuda_graphs": True}))
    assert str(e.value) == "cuda_graphs: CUDA graphs need a CUDA device; the run's device is 'cpu'"
    with pytest.raises(ConfigError, match="CUDA graphs need a CUDA device"):
        estimate("laborieux2021/mnist5k/mlp-ep-symmetric-mse", "ci", device="cpu", batches=1, cuda_graphs=True)


def test_a_cuda_run_with_cuda_graphs_switches_them_on():
    """cuda_graphs: true on a CUDA run is accepted and switches the graphs on for the process (set_precision reads
    only the configured device's type, so this runs without a GPU; the error above is for other devices only)."""
    set_precision(RunConfig.from_dict({**CFG, "device": "cuda", "cuda_graphs": True}))
    assert graphs.enabled()


def test_each_run_sets_the_switch_from_its_config():
    """The switch is process-wide (like torch's matmul precision): a run without cuda_graphs turns off what an
    earlier run in the same process turned on."""
    graphs.enable(True)
    build_parts(RunConfig.from_dict(CFG))
    assert not graphs.enabled()


def test_off_cuda_a_graphed_relaxation_is_the_eager_one():
    model = build_model("P_MLP", sizes=[64, 8, 10]).double()
    x = torch.rand(4, 64, dtype=torch.float64)
    a = relax(model, x, model.init_state(x), 7, cuda_graph=True)
    b = relax(model, x, model.init_state(x), 7)
    assert all(torch.equal(p, q) for p, q in zip(a, b))


# ------------------------------------------------------------------------------------------------ on a GPU
def _mlp(device="cuda"):
    torch.manual_seed(0)
    model = build_model("P_MLP", sizes=[64, 32, 10], act="my_sigmoid").to(device, torch.float64)
    x = torch.rand(16, 64, dtype=torch.float64, device=device)
    y = torch.arange(16, device=device) % 10
    return model, x, y


def _same(a, b):
    # the same kernels in the same order: equal to float64 round-off (cuBLAS may pick another split under capture)
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


@requires_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("kw", [{}, {"mode": "async"}, {"beta": 0.3}, {"fast": False}, {"closed_form": False},
                                {"clamp": 2}], ids=["free", "async", "nudged", "generic-loop", "autograd", "clamped"])
def test_a_replayed_relaxation_equals_the_eager_one(kw):
    model, x, y = _mlp()
    s0 = model.init_state(x)
    kw = dict(kw)
    if "beta" in kw:
        kw["y"] = y
    if "clamp" in kw:
        kw["clamp"] = {kw["clamp"]: torch.nn.functional.one_hot(y, 10).double()}
    eager = relax(model, x, s0, 12, **kw)
    for _ in range(2):  # the capture, then a replay
        _same(relax(model, x, s0, 12, cuda_graph=True, **kw), eager)
    assert graphs._GRAPHS[model], "no graph was kept: the replay ran eagerly"


@requires_cuda
@pytest.mark.gpu
def test_a_replay_reads_new_inputs_and_weights_updated_in_place():
    model, x, _ = _mlp()
    relax(model, x, model.init_state(x), 10, cuda_graph=True)
    x2 = torch.rand_like(x)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)  # what torch.optim does: in place
    _same(relax(model, x2, model.init_state(x2), 10, cuda_graph=True), relax(model, x2, model.init_state(x2), 10))
    with torch.no_grad():
        model.synapses[0].weight.data = model.synapses[0].weight.data * -1.0  # a new tensor: captured again
    _same(relax(model, x2, model.init_state(x2), 10, cuda_graph=True), relax(model, x2, model.init_state(x2), 10))


@requires_cuda
@pytest.mark.gpu
def test_negative_control_a_replay_does_not_run_the_function_again():
    """What the pointer check guards against: a graph replays the launches it recorded, so a tensor the function
    reads that is replaced (not updated in place) after the capture is not seen."""
    owner = torch.nn.Linear(2, 2).cuda()
    w = {"t": torch.ones(3, device="cuda")}
    x = torch.ones(3, device="cuda")
    assert graphs.replay(owner, "k", lambda x: [x * w["t"]], [x])[0].tolist() == [1, 1, 1]
    w["t"] = torch.full((3,), 5.0, device="cuda")
    assert graphs.replay(owner, "k", lambda x: [x * w["t"]], [x])[0].tolist() == [1, 1, 1]


@requires_cuda
@pytest.mark.gpu
def test_a_diverged_replay_names_the_step_as_the_eager_loop_does():
    model, x, _ = _mlp()
    x[3, 5] = float("nan")
    with pytest.raises(DivergenceError) as eager:
        relax(model, x, model.init_state(x), 5)
    with pytest.raises(DivergenceError) as graphed:
        relax(model, x, model.init_state(x), 5, cuda_graph=True)
    assert str(graphed.value) == str(eager.value)


@requires_cuda
@pytest.mark.gpu
def test_a_capture_failure_falls_back_to_the_eager_loop_with_one_warning():
    model, x, _ = _mlp()

    def reads_the_host(s, u):  # a host read inside the phase: a graph cannot record it
        float(u[0].sum())
        return type(model).update(model, s, u)

    eager = relax(model, x, model.init_state(x), 6, fast=False)
    model.update = reads_the_host
    with pytest.warns(RuntimeWarning, match="CUDA graph capture of LayeredEP's relaxation .* failed"):
        _same(relax(model, x, model.init_state(x), 6, fast=False, cuda_graph=True), eager)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per model and key
        _same(relax(model, x, model.init_state(x), 6, fast=False, cuda_graph=True), eager)


@requires_cuda
@pytest.mark.gpu
def test_estimate_with_cuda_graphs_on_a_gpu():
    r = estimate("laborieux2021/mnist5k/mlp-ep-symmetric-mse", "ci", device="cuda", batches=2, cuda_graphs=True)
    assert r.cuda_graphs and r.train_batch_s > 0 and dataclasses.asdict(r)["cuda_graphs"] is True
