"""What a lower precision costs the GDU theorem: EP's update computed in float32, TF32 or bfloat16 against the
BPTT gradient computed in float64 on the same case.

Relative error ‖g_EP,p − g_BPTT,64‖ / ‖g_BPTT,64‖ over all parameters, with the symmetric estimator (Laborieux
et al. 2021, Eq. 5) and T1, T2 of the case. In exact arithmetic the error is the estimator's bias, O(β²); in a
precision with unit round-off u the finite difference (Φ(β) − Φ(−β)) / 2β adds about u / β, so each precision has
its own best β: the error is reported at the best of a few β, with that β, so a user sees which nudging strength a
precision needs as well as what it costs.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from dataclasses import asdict, dataclass

import torch

from .. import cases
from ..config import DTYPES, has_tf32
from ..errors import ConfigError
from ..io import command_line, provenance, write_json
from ..rules import BPTT, EP

#: precision name → (parameter dtype, torch.set_float32_matmul_precision)
PRECISIONS: dict[str, tuple[str, str]] = {
    "float64": ("float64", "highest"),
    "float32": ("float32", "highest"),
    "tf32": ("float32", "high"),
    "bfloat16": ("bfloat16", "highest"),
    "float16": ("float16", "highest"),
}
#: the measurement's dtypes: a run's (eqbench.config.DTYPES) and float16, measured here but not trained with
TORCH_DTYPES = {**DTYPES, "float16": torch.float16}
BETAS = (1e-3, 1e-2, 1e-1)
#: the theorem cases of eqbench.cases the precisions are measured on (the DCHN: Scellier et al. 2023 simulate it in
#: 16 bits)
CASES = ("P_MLP", "P_CNN avg pool", "DCHN")


def supported(precision: str, device: str | torch.device) -> str | None:
    """None when ``device`` runs ``precision``'s relaxation (a 3×3 convolution and a matmul), else why not."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    dtype, matmul = PRECISIONS[precision]
    dev = torch.device(device)
    if matmul == "high" and not has_tf32(dev):
        return "TF32 needs an Ampere or newer GPU"
    if dev.type == "cuda" and dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        return f"{dev} has no bfloat16 arithmetic"
    try:
        x = torch.ones(1, 1, 4, 4, dtype=TORCH_DTYPES[dtype], device=dev)
        torch.nn.functional.conv2d(x, x[:, :, :3, :3], padding=1) @ x[0, 0]
    except (RuntimeError, NotImplementedError) as e:
        return f"{dev} has no {dtype} kernels ({str(e).splitlines()[0][:80]})"
    return None


@dataclass
class PrecisionError:
    case: str
    precision: str
    device: str
    error: float  # the smallest relative error over BETAS
    beta: float  # where it was reached
    errors: dict[float, float]  # every β's error


def _flat_grads(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.detach().double().flatten() for p in model.parameters()])


def precision_error(case: str, precision: str, device: str = "cpu", betas: tuple[float, ...] = BETAS
                    ) -> PrecisionError:
    """EP (symmetric) in ``precision`` on ``device`` against float64 BPTT on the CPU, on theorem case ``case``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")
    dtype, matmul = PRECISIONS[precision]
    dev = torch.device(device)
    why = supported(precision, dev)
    if why is not None:
        raise ConfigError(f"precision {precision} cannot run here: {why}")
    spec = cases.CASES[case]
    model, x, y = spec.build()  # float64
    BPTT(T1=spec.T1, T2=spec.T2).compute_gradients(model, x, y)
    ref = _flat_grads(model)
    before = torch.get_float32_matmul_precision()
    errors = {}
    try:
        torch.set_float32_matmul_precision(matmul)
        for beta in betas:
            m = copy.deepcopy(model).to(dev, TORCH_DTYPES[dtype])  # EP replaces its .grad (the reference's)
            xx = x.to(dev, TORCH_DTYPES[dtype])
            yy = y.to(dev)  # class indices
            EP(beta=beta, T1=spec.T1, T2=spec.T2, estimator="symmetric").compute_gradients(m, xx, yy)
            g = _flat_grads(m).cpu()
            errors[beta] = float((g - ref).norm() / ref.norm()) if bool(torch.isfinite(g).all()) else math.inf
    finally:
        torch.set_float32_matmul_precision(before)
    beta = min(errors, key=errors.get)
    return PrecisionError(case, precision, str(dev), errors[beta], beta, errors)


def precision_errors(device: str = "cpu") -> list[PrecisionError]:
    """float32, TF32, bfloat16 and float16, each where ``device`` supports it, on every case of ``CASES``."""
    names = [n for n in ("float32", "tf32", "bfloat16", "float16") if supported(n, device) is None]
    return [precision_error(case, name, device) for case in CASES for name in names]


def main(argv: list[str] | None = None) -> int:
    """``python -m eqbench.checks.precision [--device D] [--json F]``: the table (and JSON) of `precision_errors`
    (suites/gpu_check.py runs it on the GPU)."""
    ap = argparse.ArgumentParser(prog="python -m eqbench.checks.precision", description=main.__doc__)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("precision: error: --device cuda, but torch sees no CUDA device", file=sys.stderr)
        return 2
    rows = precision_errors(a.device)
    for r in rows:
        print(f"{r.case:16s} {r.precision:9s} {r.device:6s} rel. error {r.error:.1e} at β={r.beta:g}")
    if a.json:
        # JSON writes the β keys of ``errors`` as "0.001", …
        write_json(a.json, {"rows": [asdict(r) for r in rows],
                            "provenance": provenance(command_line("python -m eqbench.checks.precision", argv))})
    return 0


if __name__ == "__main__":
    sys.exit(main())
