"""The GPU check (``make gpu-check``): everything GPU-related in one script, at most 8 minutes on one GPU.

    python suites/gpu_check.py [--device cuda|cpu] [--base HEAD~1] [--out reports/gpu-check.json]

1. the CUDA tests (pytest marker ``gpu``) and the device-placement test;
2. the GPU benchmarks of suites/throughput (pytest-benchmark: free phase, closed form vs autograd, EP/BPTT step
   time and CUDA peak memory), a few rounds each;
3. ``eqbench estimate --all`` (seconds per epoch, hours, peak memory of every paper config, 5 batches each);
4. the GDU error of EP in float32, TF32 and bfloat16 against float64 BPTT (eqbench.checks.precision);
5. the regression gate (``eqbench regress --profile gpu``) of HEAD against BASE on the device (an interrupted
   gate keeps its finished measurements: rerunning the script continues it).

One JSON with every step's exit status, duration and figures. ``--device cpu`` runs the same steps on the CPU
variants, to show the script works where no GPU is lent. Exit status 1 if a step failed.
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


def step(name: str, cmd: list[str], timeout: float) -> dict:
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        rc, out = p.returncode, p.stdout + p.stderr
    except subprocess.TimeoutExpired as exc:
        rc, out = 124, f"timed out after {timeout:.0f} s: {exc}"
    tail = [line for line in out.strip().splitlines() if line.strip()][-3:]
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
    a = ap.parse_args(argv)
    import torch

    if a.device == "cuda" and not torch.cuda.is_available():
        print("gpu-check: error: --device cuda, but torch sees no CUDA device; run with --device cpu", file=sys.stderr)
        return 2
    py = sys.executable
    bench_json = Path(tempfile.mkdtemp(prefix="eqbench-gpu-check-")) / "bench.json"
    steps = [
        step("tests", [py, "-m", "pytest", "-q", "tests/test_device_placement.py", "suites/throughput", "-k",
                       "cuda or placement or meta" if a.device == "cuda" else "placement or meta"], 60),
        step("benchmarks", [py, "-m", "pytest", "-q", "suites/throughput", "--benchmark-only",
                            "--benchmark-min-rounds=3", f"--benchmark-json={bench_json}", "-k",
                            f"{a.device} and (mlp or speed or memory) and not bin"], 90),
        # every paper config on the GPU (5 batches each; the JSON is written after each config, so a timeout keeps
        # what finished); on the CPU one config shows the step works
        step("estimate", [py, "-m", "eqbench.cli", "estimate", "--device", a.device, "--json",
                          str(ROOT / "reports" / "gpu-check-estimate.json"),
                          *(["--all", "--batches", "5"] if a.device == "cuda"
                            else ["gammell2021/diabetes/5layer-swni", "--batches", "2"])], 180),
        step("precision", [py, "-m", "eqbench.checks.precision", "--device", a.device, "--json",
                           str(ROOT / "reports" / "gpu-check-precision.json")], 30),
        step("gate", [py, "-m", "eqbench.cli", "regress", "--base", a.base, "--device", a.device, "--profile", "gpu",
                      "--factor", "1.3", "--mem-factor", "1.3", "--out", str(ROOT / "reports" / "gpu-check-gate")],
             120),
    ]  # 480 s at most in all
    bench = []
    if bench_json.exists():
        for b in json.loads(bench_json.read_text())["benchmarks"]:
            bench.append({"name": b["name"], "median_s": b["stats"]["median"], "extra_info": b.get("extra_info", {})})
    gates = sorted((ROOT / "reports" / "gpu-check-gate").glob("*.json"), key=lambda p: p.stat().st_mtime)
    report = {"device": a.device, "torch": torch.__version__, "cuda": torch.version.cuda,
              "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
              "steps": steps, "benchmarks": bench,
              "gate": json.loads(gates[-1].read_text()) if gates else None,
              "estimate": _read(ROOT / "reports" / "gpu-check-estimate.json"),
              "precision": _read(ROOT / "reports" / "gpu-check-precision.json"),
              "pass": all(s["rc"] == 0 for s in steps)}
    out = ROOT / a.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"gpu-check: {out} ({'pass' if report['pass'] else 'FAIL'})")
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
