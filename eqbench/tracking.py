"""The values tracked across commits: asv history (``make history``) and the regression gate (``make regress``).

Each value is one number a commit produces, with what "worse" means for it. They come in families:

* machine-independent — comparable across machines and meaningful on a noisy shared one:
  ``gdu`` (the log–log slopes and the symmetric error at β = 1e-3 of every theorem case of `eqbench.cases`, and
  holomorphic EP's slopes for N = 1 … 4 on its two cases),
  ``energy`` (the energy-descent margins of ``make bench``: max ΔE as a fraction of its round-off bound),
  ``step`` (closed form = autograd, fused = generic: the largest difference in ulps of its scale, float64),
  ``memory`` (the bytes autograd saves for one EP and one BPTT step, and their ratio; `eqbench.memory.graph_bytes`),
  ``speed`` (ratios timed side by side in one process: closed form / autograd, fused / generic, BPTT / EP step),
  ``accuracy`` (one epoch of a ci-scale config per seed paper, fixed seed, one thread: the same commit gives the
  same number);
* absolute times and peak memory (``time_``, ``peakmem_`` and the CUDA peak in suites/asv_benchmarks), compared
  on one machine only.

The ``gdu``, ``energy`` and ``step`` values are the measured values of the claims catalogue (`eqbench.claims`) that
carry a ``key``, the same numbers ``make bench`` prints and the suites assert; the others come from
`eqbench.cases`, `eqbench.memory`, `eqbench.timing` and the registry's ci configs.

Tolerances. Everything but ``speed`` is deterministic on one machine at a fixed thread count, so a tolerance only
has to absorb round-off between BLAS builds and thread counts, and must still catch the bugs the suites catch:

* a GDU order (fitted over its asymptotic range, eqbench.checks.order) may move ±0.05 further from the theory's
  (the suite's bands are ±0.1; a sign or factor bug moves it by ≥ 1), a symmetric error may grow ×2 (it is ~1e-6;
  a factor-of-two estimator gives ~0.5);
* an energy margin may grow by 0.5 of its round-off bound (a real increase is orders of magnitude above it);
* a step difference may grow by 1024 ulps of its scale (a quarter of the bench's bound of 2¹²; round-off is ~1 ulp);
* graph bytes may grow ×1.05 (they count tensors by shape and dtype: any change is a real change);
* a ci accuracy may drop 2 points (the ci bands' own minimum half-width), a cost rise ×1.25;
* speed ratios are timed, hence noisy: the gate reports them and gates the absolute times instead.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch

from .cases import CASES, make_case, paper_hopfield
from .claims import claims
from .errors import ConfigError
from .memory import graph_bytes
from .registry import get_baseline
from .relaxation import relax
from .runner import to_metric
from .timing import bare_free_phase_fn, free_phase_flops, free_phase_fn, matmul_rate, train_step_fn
from .train import Trainer

FAMILIES = ("gdu", "energy", "step", "memory", "speed", "accuracy")


@dataclass(frozen=True)
class Tracked:
    """One tracked value: ``key`` is ``family/case/quantity``; ``better`` is "lower", "higher" or "target"
    (closer to ``target`` is better); ``tolerance`` is a factor when ``relative`` else an absolute amount."""

    key: str
    unit: str
    better: str
    tolerance: float
    relative: bool = False
    target: float | None = None
    gated: bool = True  # speed ratios are reported, not gated

    @property
    def family(self) -> str:
        return self.key.split("/", 1)[0]

    def worse_by(self, base: float, head: float) -> float:
        """How much worse ``head`` is than ``base``, in the tolerance's terms (a factor or an amount; ≤ 0 or ≤ 1
        when not worse). NaN or inf at HEAD where BASE was finite is infinitely worse."""
        if not math.isfinite(head):
            return math.inf if math.isfinite(base) else 0.0
        if self.better == "target":
            base, head = abs(base - self.target), abs(head - self.target)
            better = "lower"
        else:
            better = self.better
        if self.relative:
            lo, hi = (base, head) if better == "lower" else (head, base)
            if hi <= 0:
                return 1.0
            return math.inf if lo <= 0 else hi / lo
        return head - base if better == "lower" else base - head

    def regressed(self, base: float, head: float) -> bool:
        return self.worse_by(base, head) > self.tolerance


# ------------------------------------------------------------------------------------------------ catalogue
#: one epoch of a ci-scale (or CPU paper-scale) config per seed paper: seconds each on two cores
ACCURACY_RUNS: dict[str, tuple[str, str]] = {
    "laborieux2021": ("laborieux2021/mnist5k/mlp-ep-symmetric-mse", "ci"),
    "gammell2021": ("gammell2021/diabetes/5layer-swni", "paper"),
    "laydevant2021": ("laydevant2021/mnist5k/binw-fc-ep", "ci"),
    "bal2023": ("bal2023/seq_retrieval/ep", "ci"),
    "dellaferrera2022": ("dellaferrera2022/mnist5k/fc1024-pepita", "ci"),
}

def accuracy_key(bid: str, scale: str) -> str:
    return f"accuracy/{bid} ({scale}, 1 epoch)"


def catalogue() -> dict[str, Tracked]:
    """Every tracked value, by key (the keys are stable: history is indexed by them)."""
    tolerances = {"slope_one_sided": ("slope", "target", 0.05, False, 1.0),
                  "slope_symmetric": ("slope", "target", 0.05, False, 2.0),
                  "symmetric_error": ("rel. error", "lower", 2.0, True, None),
                  "margin": ("max ΔE / bound", "lower", 0.5, False, None),
                  "max_diff_ulps": ("ulps", "lower", 1024.0, False, None),
                  # holomorphic EP's orders N = 1 … 4 (the suite's bands are ±10 % of N)
                  **{f"holomorphic_slope_N{n}": ("slope", "target", 0.05 * n, False, float(n)) for n in range(1, 5)}}
    out: list[Tracked] = []
    for c in claims():
        if c.key is not None:
            unit, better, tol, rel, target = tolerances[c.key.rsplit("/", 1)[1]]
            out.append(Tracked(c.key, unit, better, tol, rel, target=target))
    for algo in ("EP", "BPTT"):
        out.append(Tracked(f"memory/P_MLP 784-512-10/{algo} graph bytes", "bytes", "lower", 1.05, relative=True))
    out.append(Tracked("memory/P_MLP 784-512-10/EP over BPTT graph bytes", "ratio", "lower", 1.05, relative=True))
    out += [Tracked(f"speed/{k}", "ratio", "higher", 1.5, True, gated=False) for k in SPEED_KEYS]
    for paper, (bid, scale) in ACCURACY_RUNS.items():
        cost = paper == "gammell2021"  # a regression task: the mean cost ½‖y − ŷ‖², lower is better
        out.append(Tracked(accuracy_key(bid, scale), "test cost" if cost else "test accuracy %",
                           "lower" if cost else "higher", 1.25 if cost else 2.0, relative=cost))
    return {t.key: t for t in out}


# ---------------------------------------------------------------------------------------------- measurements
def claim_values(wanted: list[str]) -> dict[str, float]:
    """The measured values of the catalogue's tracked claims whose key is selected by ``wanted``."""
    return {c.key: c.evaluate().value for c in claims()
            if c.key is not None and any(selected(c.key, w) for w in wanted)}


def interleaved_rates(fns: dict[str, Callable[[], Any]], work: float, rounds: int = 3) -> dict[str, float]:
    """``work`` divided by the median time of each callable, timed in interleaved rounds after one warm-up
    (so that a drift in machine load hits every callable alike)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: work / statistics.median(ts) for k, ts in times.items()}


def _free_phase_ratios(case: str, rounds: int, device: str = "cpu") -> dict[str, float]:
    """Closed form (the fused path where the model has one) over the generic autograd loop, for one free phase and
    for one symmetric EP training step (T1 = 30, T2 = 10, ``.grad`` written); for a convolutional case also over
    the autograd loop on an NCHW copy of the model (the authors' layout: eqbench's convolutions are NHWC)."""
    model, x, y = make_case(case, device=device)
    T = CASES[case].T1
    refs = {"": model}
    if any(p.dim() == 4 for p in model.parameters()):
        refs[" in NCHW"] = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    out = {}
    for tag, ref in refs.items():
        r = interleaved_rates({"cf": free_phase_fn(model, x, T, closed_form=True),
                               "ag": free_phase_fn(ref, x, T, closed_form=False)}, 1.0, rounds)
        step = interleaved_rates({"cf": train_step_fn("EP", model, x, y, 10, extra_free=20, closed_form=True),
                                  "ag": train_step_fn("EP", ref, x, y, 10, extra_free=20, closed_form=False)},
                                 1.0, rounds)
        out[f"closed form over autograd{tag}"] = r["cf"] / r["ag"]
        out[f"EP step closed form over autograd{tag}"] = step["cf"] / step["ag"]
    return out


def _mlp_ratios(rounds: int, device: str = "cpu") -> dict[str, float]:
    """P_MLP 784-512-10: the closed-form free phase against the bare loop of `eqbench.timing.bare_free_phase_fn` and
    against the compute floor (its matmul FLOPs at the machine's matmul rate, measured now); BPTT over EP."""
    model, x, y = make_case("mlp", device=device)
    T = CASES["mlp"].T1
    r = interleaved_rates({"eqbench": free_phase_fn(model, x, T, closed_form=True),
                           "bare": bare_free_phase_fn(model, x, T)}, 1.0, rounds)
    floor = free_phase_flops(model, x.shape[0], T) / matmul_rate(x.device)
    out = {"closed form over the bare loop": r["eqbench"] / r["bare"],
           "closed form over the compute floor": floor * r["eqbench"]}
    step = interleaved_rates({a: train_step_fn(a, model, x, y, 10) for a in ("EP", "BPTT")}, 1.0, rounds)
    out["BPTT over EP step"] = step["EP"] / step["BPTT"]
    return out


def _hopfield_ratio(rounds: int, device: str = "cpu") -> dict[str, float]:
    model, x = paper_hopfield()
    model, x = model.to(device), x.to(device)
    s0 = model.init_state(x)
    r = interleaved_rates({f: (lambda f=f: relax(model, x, s0, 500, fast=f)) for f in (True, False)}, 1.0, rounds)
    return {"fused over generic": r[True] / r[False]}


#: the speed ratios: case label → (what is timed, the function timing them side by side); reported by ``make bench``
#: and tracked, never gated
SPEED: dict[str, tuple[tuple[str, ...], Callable[[int, str], dict[str, float]]]] = {
    "P_MLP 784-512-10": (("closed form over autograd", "EP step closed form over autograd",
                          "closed form over the bare loop", "closed form over the compute floor", "BPTT over EP step"),
                         lambda rounds, device: {**_free_phase_ratios("mlp", rounds, device),
                                                 **_mlp_ratios(rounds, device)}),
    "P_CNN 3×32×32 conv32-conv64-fc10": (("closed form over autograd", "EP step closed form over autograd",
                                          "closed form over autograd in NCHW",
                                          "EP step closed form over autograd in NCHW"),
                                         lambda rounds, device: _free_phase_ratios("cnn_cifar", rounds, device)),
    "HOPFIELD diabetes 8-layer SW": (("fused over generic",), _hopfield_ratio),
}
SPEED_KEYS = [f"{case}/{what}" for case, (whats, _) in SPEED.items() for what in whats]
#: the targets of issue 16 for the ratios that have one (on the 2-core CPU): reported beside the ratio, never judged
SPEED_TARGETS = {
    "P_MLP 784-512-10/closed form over autograd": 12.0,
    "P_MLP 784-512-10/closed form over the bare loop": 0.9,
    "P_MLP 784-512-10/closed form over the compute floor": 0.3,
    "P_MLP 784-512-10/EP step closed form over autograd": 8.0,
    "P_CNN 3×32×32 conv32-conv64-fc10/closed form over autograd": 3.5,
    "P_CNN 3×32×32 conv32-conv64-fc10/EP step closed form over autograd": 3.0,
    "P_CNN 3×32×32 conv32-conv64-fc10/closed form over autograd in NCHW": 3.5,
    "P_CNN 3×32×32 conv32-conv64-fc10/EP step closed form over autograd in NCHW": 3.0,
}


def speed_ratios(rounds: int = 3, device: str = "cpu") -> dict[str, float]:
    """Speed ratios timed side by side in this process (the speed rows of ``make bench``), by ``case/what``."""
    out = {}
    for case, (whats, fn) in SPEED.items():
        values = fn(rounds, device)
        out.update({f"{case}/{what}": values[what] for what in whats})
    return out


def graph_memory() -> dict[str, float]:
    """Bytes saved for backward by one EP (symmetric) and one BPTT step, T2 = 10, on P_MLP 784-512-10, batch 128."""
    model, x, y = make_case("mlp")
    params = list(model.parameters())
    b = {a: float(graph_bytes(train_step_fn(a, model, x, y, 10), ignore=params)) for a in ("EP", "BPTT")}
    return {"EP graph bytes": b["EP"], "BPTT graph bytes": b["BPTT"], "EP over BPTT graph bytes": b["EP"] / b["BPTT"]}


def short_run(bid: str, scale: str) -> float:
    """Test accuracy (%) or test cost after one epoch of baseline ``bid``'s config at ``scale`` (seed as in the
    config, progress off, in a throw-away folder)."""
    b = get_baseline(bid)
    cfg = dataclasses.replace(b.scales[scale].config, epochs=1, device="cpu")
    with tempfile.TemporaryDirectory(prefix="eqbench-track-") as d:
        final = Trainer(cfg, d, progress=False).fit()["final"]
    if "test_cost" in final:
        return float(final["test_cost"])
    return float(to_metric(final, "test_accuracy"))


def measure(selection: Iterable[str] = FAMILIES) -> dict[str, float]:
    """The tracked values of ``selection``, by key: each entry a family (``"gdu"``) or a prefix of keys within one
    (``"gdu/P_MLP"``: that theorem case only)."""
    wanted = list(selection)
    unknown = sorted({w.split("/", 1)[0] for w in wanted} - set(FAMILIES))
    if unknown:
        raise ConfigError(f"unknown tracked famil{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}; "
                          f"known: {', '.join(FAMILIES)}")
    fams = {w.split("/", 1)[0] for w in wanted}
    out = claim_values(wanted)
    if "memory" in fams:
        out.update({f"memory/P_MLP 784-512-10/{k}": v for k, v in graph_memory().items()})
    if "speed" in fams:
        out.update({f"speed/{k}": v for k, v in speed_ratios().items()})
    if "accuracy" in fams:
        for bid, scale in ACCURACY_RUNS.values():
            out[accuracy_key(bid, scale)] = short_run(bid, scale)
    return {k: v for k, v in out.items() if any(selected(k, w) for w in wanted)}


def selected(key: str, entry: str) -> bool:
    """Whether tracked value ``key`` belongs to selection entry ``entry`` (a family, or a key prefix in one)."""
    return key.startswith(entry + "/")


def deterministic_threads() -> None:
    """One intra-op thread: float reductions then run in one order, so a commit gives the same numbers every run
    (``$EQBENCH_NUM_THREADS`` still wins when set)."""
    if not os.environ.get("EQBENCH_NUM_THREADS"):
        torch.set_num_threads(1)


__all__ = ["ACCURACY_RUNS", "FAMILIES", "Tracked", "catalogue", "claim_values", "deterministic_threads", "measure"]
