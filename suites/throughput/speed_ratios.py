"""The speed ratios of ``make bench`` (eqbench.tracking.SPEED), written as a measurement file for the docs.

    python suites/throughput/speed_ratios.py [--device cpu|cuda] [--rounds 3] [--runs 3]
                                             [--out suites/measurements/speed-ratios-cpu.json]

Each ratio is timed side by side in this process (interleaved rounds, median), ``--runs`` times; the JSON gives
every run's value, their range and the target of issue 16 where one was set (reported, never judged), with its
provenance. docs/speed.md renders its table from the file.
"""

from __future__ import annotations

import argparse
import sys

import torch

from eqbench import tracking
from eqbench.io import command_line, provenance, write_json


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default="suites/measurements/speed-ratios-cpu.json")
    a = ap.parse_args(argv)
    prov = provenance(command_line("python suites/throughput/speed_ratios.py", argv))  # the commit timed
    runs = []
    for i in range(a.runs):
        runs.append(tracking.speed_ratios(a.rounds, a.device))
        print(f"run {i + 1} of {a.runs} done", flush=True)
    rows = []
    for key in tracking.SPEED_KEYS:
        case, what = key.split("/")
        vals = [r[key] for r in runs]
        rows.append({"case": case, "what": what, "runs": vals, "low": min(vals), "high": max(vals),
                     "target": tracking.SPEED_TARGETS.get(key)})
    write_json(a.out, {"device": a.device, "threads": torch.get_num_threads(), "rounds": a.rounds, "rows": rows,
                       "provenance": prov})
    for r in rows:
        print(f"{r['case']}: {r['what']}: {r['low']:.2f}–{r['high']:.2f} (target {r['target']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
