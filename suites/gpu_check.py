"""The GPU check (``make gpu-check``): everything GPU-related in one script, at most 8 minutes on one GPU.

    python suites/gpu_check.py [--device cuda|cpu] [--base HEAD~1] [--out reports/gpu-check.json]

1. the CUDA tests (pytest marker ``gpu``: CUDA graphs equal the eager loop for every model × rule, ...) and the
   device-placement test;
2. the GPU benchmarks of suites/throughput (pytest-benchmark: free phase, closed form vs autograd, EP/BPTT step
   time and CUDA peak memory, CUDA graphs against the eager loop), a few rounds each;
3. ``eqbench estimate --all`` (seconds per epoch, hours, peak memory of every paper config, 5 batches each),
   eagerly and with ``--cuda-graphs``;
4. the GDU error of EP in float32, TF32, bfloat16 and float16 against float64 BPTT (eqbench.checks.precision), the
   DCHN among the cases, and the DCHN's speed-up side by side (suites/throughput/dchn_speedup.py: Laborieux et al.'s
   synchronous 250/30 against Scellier et al.'s asynchronous 60/20, fused, in float32 and bfloat16);
5. the regression gate (``eqbench regress --profile gpu``) of HEAD against BASE on the device (an interrupted
   gate keeps its finished measurements: rerunning the script continues it).

One JSON with every step's exit status, duration and figures, rewritten after every step; ``--budget`` (480 s)
bounds the whole script (a step that would start with under 10 s left is skipped). ``--device cpu`` runs the same
steps on the CPU variants, to show the script works where no GPU is lent. Exit status 1 if a step failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def step(name: str, cmd: list[str], timeout: float, deadline: float) -> dict:
    """Run ``cmd``, for at most ``timeout`` seconds and not past ``deadline`` (a step with under 10 s left is skipped,
    exit status 125)."""
    t0 = time.perf_counter()
    timeout = min(timeout, deadline - t0)
    if timeout < 10:
        rc, out = 125, "skipped: the script's time budget is spent"
    else:
        try:
            p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
            rc, out = p.returncode, p.stdout + p.stderr
        except subprocess.TimeoutExpired as exc:
            rc, out = 124, f"timed out after {timeout:.0f} s: {exc}"
    lines = [line for line in out.strip().splitlines() if line.strip()]
    tail = [line for line in lines[:-3] if line.startswith(("FAILED", "ERROR"))] + lines[-3:]  # every failure
    print(f"[{name}] exit {rc} in {time.perf_counter() - t0:.0f} s: {tail[-1] if tail else ''}", flush=True)
    return {"name": name, "cmd": " ".join(cmd), "rc": rc, "seconds": round(time.perf_counter() - t0, 1),
            "tail": tail}


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--base", default="HEAD~1", help="the gate's BASE commit (default HEAD~1)")
    ap.add_argument("--out", default="reports/gpu-check.json")
    ap.add_argument("--budget", type=float, default=480, help="seconds for all steps together (default 480)")
    a = ap.parse_args(argv)
    import torch

    from eqbench.io import command_line, provenance

    if a.device == "cuda" and not torch.cuda.is_available():
        print("gpu-check: error: --device cuda, but torch sees no CUDA device; run with --device cpu", file=sys.stderr)
        return 2
    py, cuda = sys.executable, a.device == "cuda"
    deadline = time.perf_counter() + a.budget
    reports = ROOT / "reports"
    bench_json = Path(tempfile.mkdtemp(prefix="eqbench-gpu-check-")) / "bench.json"
    # every paper config on the GPU, eagerly and through CUDA graphs (5 batches each; the JSON is written after each
    # config, so a timeout keeps what finished); on the CPU one config shows the step works
    # (of Scellier et al. 2023's 35 Table-1 cells, which differ in the rule and the dataset only, the C-EP ones)
    from eqbench.registry import load_registry

    paper = [bid for bid, b in load_registry().items() if "paper" in b.scales
             and not ("/dchn-" in bid and not bid.endswith("/dchn-cep"))]
    configs = [*paper, "--batches", "5"] if cuda else ["gammell2021/diabetes/5layer-swni", "--batches", "2"]
    plan = [
        ("tests", [py, "-m", "pytest", "-q", "tests/test_device_placement.py", "tests/test_graphs.py",
                   "suites/throughput", "-k", "cuda or placement or meta or graph" if cuda else "placement or meta"],
         150),
        ("benchmarks", [py, "-m", "pytest", "-q", "suites/throughput", "--benchmark-only", "--benchmark-min-rounds=3",
                        f"--benchmark-json={bench_json}", "-k",
                        f"{a.device} and (mlp or speed or memory) and not bin"], 120),
        ("estimate", [py, "-m", "eqbench.cli", "estimate", "--device", a.device, "--json",
                      str(reports / "gpu-check-estimate.json"), *configs], 120),
        *([("estimate with CUDA graphs", [py, "-m", "eqbench.cli", "estimate", "--device", a.device, "--cuda-graphs",
                                          "--json", str(reports / "gpu-check-estimate-graphs.json"), *configs], 120)]
          if cuda else []),
        ("precision", [py, "-m", "eqbench.checks.precision", "--device", a.device, "--json",
                       str(reports / "gpu-check-precision.json")], 60),
        # Scellier et al. 2023's speed-up side by side: the paper's DCHN at batch 128 on the GPU, a miniature on the CPU
        ("dchn speed-up", [py, "suites/throughput/dchn_speedup.py", "--device", a.device, "--rounds", "3",
                           *(["--channels", "128", "256", "512", "512", "--batch", "128"] if cuda else
                             ["--channels", "8", "16", "16", "16", "--batch", "4"]),
                           "--out", str(reports / "gpu-check-dchn-speedup.json")], 90),
        ("gate", [py, "-m", "eqbench.cli", "regress", "--base", a.base, "--device", a.device, "--profile", "gpu",
                  "--factor", "1.3", "--mem-factor", "1.3", "--out", str(reports / "gpu-check-gate")], 100),
    ]
    out = ROOT / a.out
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"device": a.device, "torch": torch.__version__, "cuda": torch.version.cuda,
              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None, "steps": [],
              "provenance": provenance(command_line("python suites/gpu_check.py", argv))}
    if report["gpu"]:  # the docs quote this file: its machine is the GPU, not the host's CPU count
        report["provenance"]["machine"] = f"{report['gpu']} ({report['provenance']['machine']})"
    for name, cmd, timeout in plan:  # the report is rewritten after every step: a cut-off run keeps what finished
        report["steps"].append(step(name, cmd, timeout, deadline))
        bench = []
        if bench_json.exists():
            for b in json.loads(bench_json.read_text())["benchmarks"]:
                bench.append({"name": b["name"], "median_s": b["stats"]["median"],
                              "extra_info": b.get("extra_info", {})})
        gates = sorted((reports / "gpu-check-gate").glob("*.json"), key=lambda p: p.stat().st_mtime)
        report.update(benchmarks=bench, gate=json.loads(gates[-1].read_text()) if gates else None,
                      estimate=_read(reports / "gpu-check-estimate.json"),
                      estimate_graphs=_read(reports / "gpu-check-estimate-graphs.json"),
                      precision=_read(reports / "gpu-check-precision.json"),
                      dchn_speedup=_read(reports / "gpu-check-dchn-speedup.json"),
                      **{"pass": all(s["rc"] == 0 for s in report["steps"])})
        out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"gpu-check: {out} ({'pass' if report['pass'] else 'FAIL'})")
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
