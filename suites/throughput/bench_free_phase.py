"""Throughput and memory benchmarks of the EP engine (pytest-benchmark).

Benchmarks (the ``benchmark`` fixture; skipped by ``--benchmark-skip``, run by ``--benchmark-only``):

* `test_free_phase` — one free phase, closed-form step vs the generic autograd step, on the
  target case P_MLP 784-512-10 (batch 128, T=30) and on Laborieux's MNIST P_CNN (batch 32, T=10).
  ``extra_info["sample_steps"]`` = batch × T: sample-steps/s = sample_steps / the reported time.
* `test_speed_ratios` — the ratios of `eqbench.tracking.SPEED` (the rows of ``make bench``), timed side by side
  in one run, each beside its target; targets are *reported* (extra_info, terminal summary), never asserted:
  timings are not tests.
* `test_train_step_memory` — one EP (symmetric, T1 = T2 + 10) or BPTT (T1 = T2 + 10) training
  step for T2 ∈ {5, 10, 20, 40}: time, and the saved-for-backward bytes of both rules
  (eqbench.memory.graph_bytes), plus the CUDA allocator's peak on a GPU.

Tests (run in the ordinary test run): the memory accounting is deterministic, so its shape is
asserted — EP flat in T2, BPTT linear in T2 — with negative controls showing the meter can fail.

GPU variants are parametrized by device and skipped when CUDA is unavailable.
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from eqbench.cases import CASES, make_case
from eqbench.memory import cuda_peak_bytes, graph_bytes
from eqbench.relaxation import relax
from eqbench.timing import free_phase_fn, train_step_fn
from eqbench.tracking import SPEED, SPEED_TARGETS, interleaved_rates

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(),
                                   reason="needs a CUDA device (torch.cuda.is_available() is False)")
DEVICES = ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, requires_cuda])]
STEPS = {"closed_form": True, "autograd": False}
T2S = [5, 10, 20, 40]


# ------------------------------------------------------------------------------------ throughput
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("step", list(STEPS))
@pytest.mark.parametrize("case", ["mlp", "cnn", "cnn_cifar", "bin_w", "bin_wn", "seq_snli"])
def test_free_phase(benchmark, case, step, device):
    spec = CASES[case]
    model, x, _ = make_case(case, device=device)
    run = free_phase_fn(model, x, spec.T1, closed_form=STEPS[step])
    benchmark.group = f"free phase {case} {device}"
    benchmark.extra_info.update(
        case=case, step=step, device=device, batch=x.shape[0], T=spec.T1,
        sample_steps=x.shape[0] * spec.T1,
    )
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", list(SPEED))
def test_speed_ratios(benchmark, case, device, throughput_report):
    """The speed ratios of `eqbench.tracking.SPEED` (closed form / autograd for a free phase and an EP step, the
    closed form against a bare loop and against the compute floor, fused / generic), each timed side by side in
    7 interleaved rounds, beside its target where it has one. Reported, never asserted."""
    whats, fn = SPEED[case]
    values = benchmark.pedantic(fn, args=(7, device), rounds=1, iterations=1)
    benchmark.group = f"speed ratios {device}"
    benchmark.extra_info.update(case=case, device=device, threads=torch.get_num_threads(), **values)
    for what in whats:
        target = SPEED_TARGETS.get(f"{case}/{what}")
        verdict = "" if target is None else f" (target ≥ {target:g}: {'met' if values[what] >= target else 'missed'})"
        throughput_report(f"{case} on {device} ({torch.get_num_threads()} threads): {what} "
                          f"×{values[what]:.2f}{verdict}")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("step", ["fused", "generic"])
@pytest.mark.parametrize("case", ["hopfield", "hopfield_mnist"])
def test_hopfield_free_phase(benchmark, case, step, device, throughput_report):
    # Gammell et al.'s networks: the fused Euler step (fast_relax) against the generic loop
    spec = CASES[case]
    model, x, _ = make_case(case, device=device)
    runs = {s: free_phase_fn(model, x, spec.T1, closed_form=True, fast=s == "fused") for s in ("fused", "generic")}
    benchmark.group = f"hopfield free phase {case} {device}"
    benchmark.extra_info.update(case=case, step=step, device=device, batch=x.shape[0], T=spec.T1,
                                sample_steps=x.shape[0] * spec.T1)
    if step == "fused":  # the ratio, timed side by side (reported, not asserted)
        times = {s: [] for s in runs}
        for _ in range(5):
            for s, run in runs.items():
                t0 = time.perf_counter()
                run()
                times[s].append(time.perf_counter() - t0)
        ratio = statistics.median(times["generic"]) / statistics.median(times["fused"])
        benchmark.extra_info["fused_over_generic"] = ratio
        throughput_report(f"hopfield free phase {case} batch {x.shape[0]} T={spec.T1} on {device}: fused step "
                          f"{x.shape[0] * spec.T1 / statistics.median(times['fused']):,.0f} sample-steps/s, "
                          f"×{ratio:.1f} the generic loop")
    benchmark.pedantic(runs[step], rounds=3, warmup_rounds=1)


@pytest.mark.gpu
@requires_cuda
@pytest.mark.parametrize("case", ["mlp", "cnn_cifar"])
def test_cuda_graph_speed(benchmark, case, throughput_report):
    """CUDA graphs (eqbench.graphs) against the eager loop on the GPU, timed side by side in 7 interleaved rounds:
    one closed-form free phase and one symmetric EP training step (T1 = 30, T2 = 10); the capture's one-off cost
    (two warm-up runs and the capture, per phase) beside them. Reported, never asserted."""
    model, x, y = make_case(case, device="cuda")
    T = CASES[case].T1
    graphed = free_phase_fn(model, x, T, closed_form=True, cuda_graph=True)
    t0 = time.perf_counter()
    graphed()
    capture_s = time.perf_counter() - t0
    free = interleaved_rates({g: free_phase_fn(model, x, T, closed_form=True, cuda_graph=g) for g in (True, False)},
                             1.0, 7)
    step = interleaved_rates({g: train_step_fn("EP", model, x, y, 10, extra_free=20, cuda_graphs=g)
                              for g in (True, False)}, 1.0, 7)
    values = {"free phase graphed over eager": free[True] / free[False],
              "EP step graphed over eager": step[True] / step[False],
              "free phase eager ms": 1e3 / free[False], "free phase graphed ms": 1e3 / free[True],
              "EP step eager ms": 1e3 / step[False], "EP step graphed ms": 1e3 / step[True],
              "first graphed free phase (capture) ms": capture_s * 1e3}
    benchmark.group = "cuda graphs"
    benchmark.extra_info.update(case=case, batch=x.shape[0], T=T, **values)
    throughput_report(f"CUDA graphs {case} batch {x.shape[0]} T={T}: free phase "
                      f"×{values['free phase graphed over eager']:.2f} "
                      f"({values['free phase eager ms']:.2f} → {values['free phase graphed ms']:.2f} ms), EP step "
                      f"×{values['EP step graphed over eager']:.2f} ({values['EP step eager ms']:.2f} → "
                      f"{values['EP step graphed ms']:.2f} ms), capture {capture_s * 1e3:.0f} ms")
    benchmark.pedantic(graphed, rounds=5, warmup_rounds=1)


# ------------------------------------------------------------------------------------ memory
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("T2", T2S)
@pytest.mark.parametrize("algo", ["EP", "BPTT"])
def test_train_step_memory(benchmark, algo, T2, device, throughput_report):
    model, x, y = make_case("mlp", device=device)
    steps = {a: train_step_fn(a, model, x, y, T2) for a in ("EP", "BPTT")}
    nbytes = {a: graph_bytes(fn) for a, fn in steps.items()}
    benchmark.group = f"train step {device}"
    benchmark.extra_info.update(
        case="mlp", algo=algo, device=device, batch=x.shape[0], T1=T2 + 10, T2=T2,
        graph_bytes=nbytes[algo], graph_bytes_EP=nbytes["EP"], graph_bytes_BPTT=nbytes["BPTT"],
        bptt_over_ep=nbytes["BPTT"] / nbytes["EP"],
    )
    if device == "cuda":
        benchmark.extra_info["cuda_peak_bytes"] = cuda_peak_bytes(steps[algo])
    if algo == "BPTT":  # one line per (T2, device)
        throughput_report(f"graph bytes P_MLP 784-512-10 batch {x.shape[0]} T2={T2:>2} on {device}: "
                          f"EP {nbytes['EP']:,}  BPTT {nbytes['BPTT']:,}  "
                          f"BPTT/EP {nbytes['BPTT'] / nbytes['EP']:.1f}")
    benchmark.pedantic(steps[algo], rounds=3, warmup_rounds=1)


# ------------------------------------------------------------------------------------ tests
@pytest.fixture
def one_thread():
    """Byte counts do not depend on threads; one thread keeps these tiny-tensor tests fast on a
    busy runner, where idle OpenMP workers waiting for a core cost milliseconds per op."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _memory_table(device: str = "cpu") -> dict[str, list[int]]:
    model, x, y = make_case("small", device=device)
    return {a: [graph_bytes(train_step_fn(a, model, x, y, T2)) for T2 in T2S] for a in ("EP", "BPTT")}


def test_graph_memory_shape(one_thread):
    """EP's saved-for-backward bytes are flat in T2, BPTT's grow linearly (P_MLP 64-32-10, batch 16).

    The accounting is exact integer bytes of tensor storages, so EP's numbers are compared for
    equality. BPTT's per-step slopes over the uneven grid T2 = 5, 10, 20, 40 are compared (the
    second differences of bytes against T2): each graph step saves tensors of the same shapes,
    so today they agree exactly; the 1 % tolerance admits an engine change that saves an O(1)
    tensor on some steps only, while anything superlinear — a graph that keeps every previous
    step's tensors a second time, say — moves the slope from 5→10 to 20→40 by far more.
    """
    table = _memory_table()
    ep, bptt = table["EP"], table["BPTT"]
    assert ep[0] > 0, "EP's estimator builds a Φ graph; a zero count means the meter saw nothing"
    assert ep == [ep[0]] * len(T2S), f"EP graph bytes depend on T2: {dict(zip(T2S, ep))}"
    assert all(a < b for a, b in zip(bptt, bptt[1:])), f"BPTT bytes not increasing: {dict(zip(T2S, bptt))}"
    slopes = [(b1 - b0) / (t1 - t0) for (t0, b0), (t1, b1) in zip(zip(T2S, bptt), zip(T2S[1:], bptt[1:]))]
    mean = statistics.fmean(slopes)
    assert max(slopes) - min(slopes) <= 0.01 * mean, f"BPTT bytes not linear in T2: per-step slopes {slopes}"
    assert bptt[-1] >= 10 * ep[-1], f"BPTT at T2={T2S[-1]} holds {bptt[-1]} bytes, EP {ep[-1]}: not ≥ 10×"


def test_graph_bytes_sees_a_growing_graph(one_thread):
    """Negative control: a relaxation that keeps its graph (graph=True) is counted, and grows with T,
    so EP's flat count is not the artefact of a meter that cannot see growth."""
    model, x, _ = make_case("small")
    counts = [graph_bytes(lambda T=T: relax(model, x, model.init_state(x), T, graph=True)) for T in (1, 2, 4, 8)]
    assert counts[0] > 0
    assert all(a < b for a, b in zip(counts, counts[1:])), counts


def test_graph_bytes_counts_the_peak_not_the_total(one_thread):
    """The meter releases what autograd frees: the autograd step builds and drops a Φ graph every
    step, so its peak is one step's graph whatever T (a total would grow); the closed form under
    no_grad saves nothing."""
    model, x, _ = make_case("small")
    autograd = [graph_bytes(lambda T=T: relax(model, x, model.init_state(x), T, closed_form=False)) for T in (1, 4, 8)]
    assert autograd[0] > 0 and autograd == [autograd[0]] * 3, autograd
    assert graph_bytes(lambda: relax(model, x, model.init_state(x), 8, closed_form=True)) == 0


@pytest.mark.gpu
@requires_cuda
def test_graph_bytes_device_independent(one_thread):
    """The same step saves the same bytes on the GPU as on the CPU."""
    assert _memory_table("cuda") == _memory_table("cpu")
