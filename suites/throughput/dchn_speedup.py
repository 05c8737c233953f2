"""The DCHN's simulation speed-up (Scellier et al. 2023: "13.5× faster than Laborieux et al. 2021"), side by side.

    python suites/throughput/dchn_speedup.py [--device cpu|cuda] [--channels 32 64 128 128] [--batch 16]
                                             [--rounds 5] [--out suites/measurements/dchn-speedup.json]

One training step of centred EP (one batch: the free phase, two nudged phases, the update) on a CIFAR-shaped DCHN
(eqbench.models.dchn), in the four settings that separate what each ingredient buys:

* ``laborieux2021``: synchronous steps, T1 = 250, T2 = 30, float32 (``speedup.py --32bit``);
* ``async generic``: the paper's counts (T1 = 60, T2 = 20; ``speedup.py --16bit``) through the generic asynchronous
  loop, which recomputes every layer's drive at each half-step;
* ``scellier2023``: the same counts through the fused asynchronous minimiser (one synchronous step's products per
  iteration), float32;
* ``scellier2023 16-bit``: the same in bfloat16 (where the device has it).

The settings are timed in interleaved rounds (round r runs every setting once, so a slow spell of the machine hits
them all) and compared by their medians, with the evaluation batch (the free phase alone) timed the same way: a
CIFAR-10 epoch at this batch size costs ⌈50 000/B⌉ training steps and ⌈10 000/B⌉ evaluations, and the ratio
``laborieux2021 / setting`` of those epoch times is the speed-up. The iterations each mode needs to a residual are
measured too: the free phase from zero (float64, generic loop with a trace), the largest per-sample
‖s_{t+1} − s_t‖ relative to ‖s_t‖, and the first iteration at which it falls below 1e-2, 1e-4 and 1e-6. The JSON
(with its provenance) is what the docs' table (docs/seeds/scellier2023.md) is rendered from
(eqbench.compare.speedup_table, checked current by tests/test_compare.py).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {  # name → (mode, T1, T2, fast, dtype)
    "laborieux2021": ("sync", 250, 30, True, torch.float32),
    "async generic": ("async", 60, 20, False, torch.float32),
    "scellier2023": ("async", 60, 20, True, torch.float32),
    "scellier2023 16-bit": ("async", 60, 20, True, torch.bfloat16),
}
TOLS = (1e-2, 1e-4, 1e-6)


def iterations_to_residual(model, x, steps: int = 300) -> dict[str, dict[str, int | None]]:
    """Per mode, the first iteration whose relative residual is below each of `TOLS` (None: not within ``steps``)."""
    from eqbench.relaxation import Trace, relax

    out = {}
    for mode in ("sync", "async"):
        trace = Trace(keep_states=True)
        relax(model, x, model.init_state(x), steps, mode=mode, trace=trace)
        rel = []
        for t, r in enumerate(trace.residual):
            norm = float(sum((s.flatten(1) ** 2).sum(1) for s in trace.states[t + 1]).sqrt().max())
            rel.append(r / norm if norm > 0 else float("inf"))
        out[mode] = {f"{tol:g}": next((t + 1 for t, v in enumerate(rel) if v <= tol), None) for tol in TOLS}
    return out


def step_fn(model, x, y, mode: str, T1: int, T2: int, fast: bool):
    """One C-EP training step (.grad written), synchronising the device before it returns."""
    from eqbench.relaxation import relax
    from eqbench.rules import EP
    from eqbench.timing import sync

    class GenericEP(EP):
        """EP whose phases run the generic loop (``relax(fast=False)``) instead of the model's fused relaxation."""

        def relax(self, model, x, s, steps, beta=0.0, y=None, cache=None, clamp=None):
            return relax(model, x, s, steps, beta=beta, y=y, mode=self.mode, closed_form=self.closed_form,
                         cache=cache, clamp=clamp, fast=False)

    rule = (EP if fast else GenericEP)(beta=0.1, T1=T1, T2=T2, estimator="symmetric", mode=mode)

    def run():
        rule.compute_gradients(model, x, y)
        sync(x)

    def evaluate():
        rule.predict(model, x)
        sync(x)

    return run, evaluate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--channels", type=int, nargs="+", default=[32, 64, 128, 128])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "suites" / "measurements" / "dchn-speedup.json"))
    a = ap.parse_args(argv)
    from eqbench.checks.precision import supported
    from eqbench.io import command_line, provenance, write_json
    from eqbench.models import build_model
    from eqbench.relaxation import fused

    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("dchn-speedup: error: --device cuda, but torch sees no CUDA device", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    base = build_model("DCHN", channels=a.channels)
    x = torch.rand(a.batch, *base.in_shape)
    y = torch.arange(a.batch) % base.n_classes
    iters = iterations_to_residual(base.double(), x[:4].double())
    settings = {k: v for k, v in SETTINGS.items() if supported("bfloat16" if v[4] == torch.bfloat16 else "float32",
                                                              a.device) is None}
    runs, times, evals, fusion = {}, {k: [] for k in settings}, {k: [] for k in settings}, {}
    for name, (mode, T1, T2, fast, dtype) in settings.items():
        m = build_model("DCHN", channels=a.channels).to(a.device, dtype)
        m.load_state_dict(base.state_dict())
        xs = x[:1].to(a.device, dtype)  # whether the model fuses this mode (the synchronous conv steps are generic)
        fusion[name] = fast and fused(m, xs, m.init_state(xs), 1, 0.0, None, None, mode=mode) is not None
        runs[name] = step_fn(m, x.to(a.device, dtype), y.to(a.device), mode, T1, T2, fast)
        for f in runs[name]:  # warm-up
            f()
    for _ in range(a.rounds):
        for name, (run, evaluate) in runs.items():
            for f, into in ((run, times), (evaluate, evals)):
                t0 = time.perf_counter()
                f()
                into[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_eval = {k: statistics.median(v) for k, v in evals.items()}
    # an epoch of CIFAR-10 at this batch size: every training batch costs a step, every test batch a free phase
    epoch = {k: math.ceil(50_000 / a.batch) * med[k] + math.ceil(10_000 / a.batch) * med_eval[k] for k in med}
    ref = epoch["laborieux2021"]
    doc = {
        "model": f"DCHN {'-'.join(map(str, a.channels))} on 3×32×32, batch {a.batch}", "device": a.device,
        "threads": torch.get_num_threads(), "rounds": a.rounds,
        "settings": {k: {"mode": v[0], "T1": v[1], "T2": v[2], "fused": fusion[k],
                         "dtype": str(v[4]).replace("torch.", ""),
                         "step_s": med[k], "eval_s": med_eval[k], "rounds_s": times[k], "epoch_s": epoch[k],
                         "speedup": ref / epoch[k]}
                     for k, v in settings.items()},
        "iterations_to_residual": iters,
        "provenance": provenance(command_line("python suites/throughput/dchn_speedup.py", argv)),
    }
    write_json(a.out, doc)
    print(json.dumps({k: round(v["speedup"], 2) for k, v in doc["settings"].items()}), iters)
    return 0


if __name__ == "__main__":
    sys.exit(main())
