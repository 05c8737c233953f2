"""The asynchronous update mode with fewer steps, against the synchronous default, at ci scale.

    python suites/accuracy/async_steps.py [--seeds 3] [--out reports/async-steps]

Scellier et al. 2023 report 13.5× over Laborieux et al. 2021 from asynchronous updates and fewer iterations. This
measures what the step count costs in accuracy on the ci config of Laborieux et al.'s P_MLP 784-512-10
(symmetric EP, MNIST-5k, 8 epochs): the synchronous default (T1 30, T2 10) against the asynchronous mode (even
layers, then odd from the new evens) with the same and with fewer steps, and the synchronous mode with the same
fewer steps (so that what the order buys is separated from what the step count costs). Each (variant, seed) is
one run folder under ``--out`` (finished runs are reused, interrupted ones resumed); ``summary.md`` and
``summary.json`` give the mean ± std of the final test accuracy and the mean seconds per epoch. A study, not a
test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

BASELINE = "laborieux2021/mnist5k/mlp-ep-symmetric-mse"
#: variant → (mode, T1, T2)
VARIANTS = {
    "sync T1 30 T2 10 (default)": ("sync", 30, 10),
    "async T1 30 T2 10": ("async", 30, 10),
    "async T1 15 T2 5": ("async", 15, 5),
    "async T1 10 T2 4": ("async", 10, 4),
    "sync T1 10 T2 4": ("sync", 10, 4),  # is it the asynchronous order that allows fewer steps?
    "async T1 5 T2 2": ("async", 5, 2),
    "sync T1 5 T2 2": ("sync", 5, 2),
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default="reports/async-steps")
    a = ap.parse_args(argv)
    import torch

    from eqbench.config import RunConfig
    from eqbench.io import command_line, provenance
    from eqbench.registry import get_baseline
    from eqbench.runner import run_seed

    torch.set_num_threads(min(2, torch.get_num_threads()))
    base = get_baseline(BASELINE).scales["ci"].config.to_dict()
    out = Path(a.out)
    rows = []
    for name, (mode, T1, T2) in VARIANTS.items():
        accs, epoch_s = [], []
        for seed in range(a.seeds):
            cfg = RunConfig.from_dict({**base, "seed": seed, "rule": {**base["rule"], "mode": mode, "T1": T1,
                                                                       "T2": T2}})
            r = run_seed(cfg, out / f"{mode}-T1{T1}-T2{T2}" / f"seed{seed}", progress=False)
            accs.append(r["final"]["test_acc"])
            epoch_s.append(r["mean_epoch_s"])
            print(f"{name}, seed {seed}: test accuracy {accs[-1]:.2f} %, {epoch_s[-1]:.1f} s/epoch", flush=True)
        rows.append({"variant": name, "mode": mode, "T1": T1, "T2": T2, "test_acc": accs,
                     "mean": statistics.mean(accs), "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                     "epoch_s": statistics.mean(epoch_s)})
    ref = rows[0]["epoch_s"]
    for r in rows:
        r["speed_vs_default"] = ref / r["epoch_s"]
    lines = [f"# Asynchronous updates with fewer steps ({BASELINE}, ci config, {a.seeds} seeds)", "",
             "| variant | final test accuracy (%) | s / epoch | speed vs default |", "|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['mean']:.2f} ± {r['std']:.2f} | {r['epoch_s']:.2f} | "
              f"{r['speed_vs_default']:.2f}× |" for r in rows]
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    prov = provenance(command_line("python suites/accuracy/async_steps.py", argv))
    (out / "summary.json").write_text(json.dumps({"rows": rows, "provenance": prov}, indent=2) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
