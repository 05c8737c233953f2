"""What a precision costs the GDU theorem (eqbench.checks.precision), and the run-config options that pick one."""

from __future__ import annotations

import contextlib
import io
import math

import pytest
import torch

from eqbench.checks.precision import precision_error
from eqbench.config import RunConfig
from eqbench.errors import ConfigError
from eqbench.train import build_parts, set_precision

pytestmark = pytest.mark.usefixtures("one_thread")


def test_float64_reaches_the_theorem_and_lower_precisions_pay_round_off_over_beta():
    """float64: the symmetric estimator's error is its O(β²) bias at β = 1e-2 and 1e-3 (a tenth of β, a hundredth of
    the error: ±20 %). In precision p the finite difference adds ≈ u_p / β: at β = 1e-3 bfloat16 (u = 2⁻⁸) is far
    above float32 (u = 2⁻²⁴), by 2¹⁶ in theory; 100× is asserted, which a precision that was silently float32
    would fail."""
    f64 = precision_error("P_MLP", "float64", betas=(1e-2, 1e-3))
    assert 80 <= f64.errors[1e-2] / f64.errors[1e-3] <= 120 and f64.beta == 1e-3
    f32 = precision_error("P_MLP", "float32", betas=(1e-3,))
    bf16 = precision_error("P_MLP", "bfloat16", betas=(1e-3,))
    assert f64.error < f32.error and bf16.error >= 100 * f32.error
    best = precision_error("P_MLP", "bfloat16", betas=(1e-3, 1e-1))
    assert best.beta == 1e-1 and best.error < bf16.error  # a larger β is what bfloat16 needs


def test_unknown_precision_and_tf32_without_a_gpu_are_one_line():
    with pytest.raises(ConfigError, match="unknown precision 'fp8'"):
        precision_error("P_MLP", "fp8")
    with pytest.raises(ConfigError, match="TF32 needs an Ampere or newer GPU"):
        precision_error("P_MLP", "tf32", "cpu")


BASE = {"model": {"name": "P_MLP", "sizes": [64, 8, 10]}, "rule": {"name": "EP", "beta": 0.5, "T1": 5, "T2": 2},
        "optimizer": {"name": "sgd", "lrs": [0.1, 0.1]}, "data": {"name": "digits", "batch_size": 8}, "epochs": 1}


def test_run_config_takes_bfloat16_and_a_matmul_precision():
    before = torch.get_float32_matmul_precision()
    try:
        cfg = RunConfig.from_dict({**BASE, "dtype": "bfloat16", "matmul_precision": "medium"})
        model = build_parts(cfg)[0]
        assert next(model.parameters()).dtype == torch.bfloat16 and torch.get_float32_matmul_precision() == "medium"
        assert RunConfig.from_dict(cfg.to_dict()) == cfg
    finally:
        torch.set_float32_matmul_precision(before)


@pytest.mark.parametrize("key, value, message", [
    ("dtype", "float16", "dtype must be one of float32, float64, bfloat16, got 'float16'"),
    ("matmul_precision", "tf32", "matmul_precision must be one of highest, high, medium, got 'tf32'"),
])
def test_bad_precision_options_are_one_line(key, value, message):
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict({**BASE, key: value})


@pytest.mark.parametrize("over, message", [
    ({"dtype": "bfloat16"}, "dtype bfloat16: Old GPU does not support it"),
    ({"matmul_precision": "high"}, "matmul_precision 'high' (TF32): Old GPU has no TF32 (compute capability 8.0 or "
                                   "newer needed)"),
])
def test_a_precision_the_gpu_lacks_is_one_line_naming_the_gpu(monkeypatch, over, message):
    """On a GPU without bfloat16 or TF32 (a pre-Ampere card, compute capability 7.0, on cuda:1 of a machine whose
    current device is another card; simulated so the test runs anywhere) a run asking for them is refused in one
    line naming the run's card; float32 at the highest precision runs there, and a CPU run on the same machine is
    not judged by its GPU."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **kw: False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a: (7, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name",
                        lambda device=None: "Old GPU" if device == torch.device("cuda:1") else "current GPU")
    with pytest.raises(ConfigError) as e:
        set_precision(RunConfig.from_dict({**BASE, **over, "device": "cuda:1"}))
    assert str(e.value) == message
    set_precision(RunConfig.from_dict({**BASE, "device": "cuda:1"}))  # float32, "highest": no error
    before = torch.get_float32_matmul_precision()
    try:
        set_precision(RunConfig.from_dict({**BASE, **over}))  # the CPU: no error
    finally:
        torch.set_float32_matmul_precision(before)


def test_the_precision_table_as_json(tmp_path, capsys):
    """``python -m eqbench.checks.precision`` (run on the GPU by suites/gpu_check.py): one row per case and precision,
    float32 far below bfloat16 on each case."""
    import json

    from eqbench.checks.precision import CASES, main

    assert main(["--json", str(tmp_path / "p.json")]) == 0
    doc = json.loads((tmp_path / "p.json").read_text())
    rows = doc["rows"]
    assert doc["provenance"]["command"] == f"python -m eqbench.checks.precision --json {tmp_path / 'p.json'}"
    assert [(r["case"], r["precision"]) for r in rows] == [(c, p) for c in CASES
                                                           for p in ("float32", "bfloat16", "float16")]
    for r in rows:  # every β's error, keyed by the β as written; the best one is the row's
        assert r["device"] == "cpu" and list(r["errors"]) == ["0.001", "0.01", "0.1"]
        assert r["error"] == min(r["errors"].values()) == r["errors"][str(r["beta"])]
    by = {(r["case"], r["precision"]): r["error"] for r in rows}
    assert all(100 * by[c, "float32"] < min(by[c, "bfloat16"], by[c, "float16"]) for c in CASES)
    assert "P_MLP            float32" in capsys.readouterr().out


def test_the_precision_table_asks_for_a_gpu_it_does_not_have_in_one_line(capsys, monkeypatch):
    from eqbench.checks.precision import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["--device", "cuda:0"]) == 2
    assert capsys.readouterr().err == "precision: error: --device cuda, but torch sees no CUDA device\n"


def test_tf32_joins_the_table_on_an_ampere_gpu(monkeypatch):
    """The rows in order: float32, TF32, bfloat16, float16, each where the device has it, for each case."""
    from eqbench.checks import precision

    calls = []
    monkeypatch.setattr(precision, "precision_error", lambda case, name, device: calls.append((case, name, device)))
    monkeypatch.setattr(precision, "supported", lambda name, device: None if name != "tf32" or device == "cuda"
                        else "TF32 needs an Ampere or newer GPU")
    precision.precision_errors("cuda")
    assert calls == [(c, p, "cuda") for c in precision.CASES for p in ("float32", "tf32", "bfloat16", "float16")]
    calls.clear()
    precision.precision_errors()
    assert calls == [(c, p, "cpu") for c in precision.CASES for p in ("float32", "bfloat16", "float16")]


def test_a_precision_the_device_lacks_is_one_line(monkeypatch):
    """bfloat16 on a GPU without it, and a dtype whose kernels the device lacks (simulated: the probe convolution
    raises), are refused before the case is built."""
    from eqbench.checks import precision

    monkeypatch.setattr(torch.nn.functional, "conv2d", lambda *a, **kw: (_ for _ in ()).throw(
        RuntimeError('"slow_conv2d_cpu" not implemented for \'Half\'')))
    assert precision.supported("float16", "cpu").startswith("cpu has no float16 kernels (\"slow_conv2d_cpu\" not")
    with pytest.raises(ConfigError, match="precision float16 cannot run here: cpu has no float16 kernels") as e:
        precision_error("DCHN", "float16")
    assert "\n" not in str(e.value)


def test_the_error_is_the_relative_distance_to_float64_bptt():
    """‖g − g_BPTT‖ / ‖g_BPTT‖ over all parameters, g the symmetric EP update: recomputed here from the rules."""
    from eqbench.cases import CASES
    from eqbench.rules import BPTT, EP

    spec = CASES["P_MLP"]
    model, x, y = spec.build()
    BPTT(T1=spec.T1, T2=spec.T2).compute_gradients(model, x, y)
    ref = torch.cat([p.grad.flatten() for p in model.parameters()])
    EP(beta=1e-2, T1=spec.T1, T2=spec.T2, estimator="symmetric").compute_gradients(model, x, y)
    g = torch.cat([p.grad.flatten() for p in model.parameters()])
    expected = float((g - ref).norm() / ref.norm())
    assert precision_error("P_MLP", "float64", betas=(1e-2,)).error == pytest.approx(expected, rel=1e-12)


def test_the_precision_command_says_what_it_is():
    from eqbench.checks.precision import main

    with pytest.raises(SystemExit) as e, contextlib.redirect_stdout(io.StringIO()) as out:
        main(["--help"])
    assert e.value.code == 0
    text = out.getvalue()
    assert text.startswith("usage: python -m eqbench.checks.precision [-h] [--device DEVICE] [--json JSON]")
    assert "the table (and JSON) of" in " ".join(text.split())


def test_precision_errors_are_whole_lines():
    with pytest.raises(ConfigError) as e:
        precision_error("P_MLP", "fp8")
    assert str(e.value) == "unknown precision 'fp8'; known: float64, float32, tf32, bfloat16, float16"
    with pytest.raises(ConfigError) as e:
        precision_error("P_MLP", "tf32", "cpu")
    assert str(e.value) == "precision tf32 cannot run here: TF32 needs an Ampere or newer GPU"


def test_a_non_finite_update_counts_as_an_infinite_error(monkeypatch):
    """A β at which the low-precision update overflows (NaN or ∞ in a gradient) is reported as ∞ and never chosen
    as the best β."""
    from eqbench.rules import EP

    real = EP.compute_gradients

    def overflowing(self, model, x, y, **kw):
        out = real(self, model, x, y, **kw)
        if self.beta == 1e-3:
            next(model.parameters()).grad[0] = math.nan
        return out

    monkeypatch.setattr(EP, "compute_gradients", overflowing)
    r = precision_error("P_MLP", "float32", betas=(1e-3, 1e-2))
    assert r.errors[1e-3] == math.inf and r.beta == 1e-2 and math.isfinite(r.error)
