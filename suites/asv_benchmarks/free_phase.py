"""asv benchmarks: free-phase throughput (closed-form vs autograd step) and the time and memory of
one EP / BPTT training step as the number of nudged / backpropagated steps T2 grows, on every device.

The cases, callables and memory probes are shared with the pytest-benchmark suite
(suites/throughput) through eqbench.cases, eqbench.timing and eqbench.memory, so the two flavours
measure the same thing. The callables synchronise CUDA before they return, so a wall clock around them
is honest on a GPU.
"""

from __future__ import annotations

import statistics
import time

from eqbench.cases import CASES, make_case
from eqbench.memory import cuda_peak_bytes, graph_bytes
from eqbench.timing import free_phase_fn, train_step_fn

from .common import DEVICES, require_device

#: step name → (closed_form, fast) arguments of free_phase_fn
STEPS = {"closed_form": (True, True), "autograd": (False, True), "fused": (True, True), "generic": (True, False)}


class _FreePhaseSetup:
    def setup(self, case: str, step: str, device: str) -> None:
        require_device(device)
        spec = CASES[case]
        model, x, _ = make_case(case, device=device)
        self.sample_steps = x.shape[0] * spec.T1
        closed_form, fast = STEPS[step]
        self.run = free_phase_fn(model, x, spec.T1, closed_form=closed_form, fast=fast)

    def time_free_phase(self, case: str, step: str, device: str) -> None:
        self.run()


class FreePhase(_FreePhaseSetup):
    """One free phase of the case's T steps from the model's initial state (eqbench.cases.CASES: P_MLP 784-512-10
    at batch 128, T=30; a CIFAR-shaped P_CNN at batch 64, T=20; Laydevant's bin_W and bin_W_N nets; Bal &
    Sengupta's SNLI model, which has no closed form, so both steps run autograd)."""

    params = (["mlp", "cnn_cifar", "bin_w", "bin_wn", "seq_snli"], ["closed_form", "autograd"], DEVICES)
    param_names = ["case", "step", "device"]
    timeout = 120

    def track_sample_steps_per_second(self, case: str, step: str, device: str) -> float:
        """batch × T divided by the median of 5 timed runs (after one warm-up)."""
        self.run()
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            self.run()
            times.append(time.perf_counter() - t0)
        return self.sample_steps / statistics.median(times)

    track_sample_steps_per_second.unit = "sample-steps/s"


class TrainStep:
    """One training step (``.grad`` written, no optimizer step) on P_MLP 784-512-10, batch 128:
    EP with the symmetric estimator, or BPTT, both with T1 = T2 + 10.

    ``peakmem_`` is the process's peak RSS (asv), ``track_graph_bytes`` the deterministic bytes
    saved for backward (eqbench.memory.graph_bytes): flat in T2 for EP, linear for BPTT (the CUDA allocator's peak
    is `CudaPeakMemory`).
    """

    params = (["EP", "BPTT"], [5, 10, 20, 40], DEVICES)
    param_names = ["algo", "T2", "device"]
    timeout = 300

    def setup(self, algo: str, T2: int, device: str) -> None:
        require_device(device)
        self.model, x, y = make_case("mlp", device=device)
        self.run = train_step_fn(algo, self.model, x, y, T2)

    def time_train_step(self, algo: str, T2: int, device: str) -> None:
        self.run()

    def peakmem_train_step(self, algo: str, T2: int, device: str) -> None:
        self.run()

    def track_graph_bytes(self, algo: str, T2: int, device: str) -> int:
        return graph_bytes(self.run, ignore=list(self.model.parameters()))

    track_graph_bytes.unit = "bytes"


class CudaPeakMemory(TrainStep):
    """The CUDA allocator's peak during one training step (after a warm-up step), on the GPU only: skipped in
    ``setup`` where torch sees no CUDA device."""

    params = (["EP", "BPTT"], [5, 10, 20, 40], ["cuda"])

    def track_cuda_peak_bytes(self, algo: str, T2: int, device: str) -> int:
        self.run()  # warm-up: kernels and the allocator's first blocks
        return cuda_peak_bytes(self.run, device)

    track_cuda_peak_bytes.unit = "bytes"

    # only the CUDA peak here: the inherited time, peak-RSS and graph-bytes benchmarks belong to TrainStep
    time_train_step = peakmem_train_step = track_graph_bytes = None


class HopfieldFreePhase(_FreePhaseSetup):
    """One free phase of Gammell et al.'s Hopfield networks: the fused Euler step (one addmm + clamp)
    against the engine's generic closed-form loop (16 s per call on two cores for the 1000 steps of the diabetes
    network: time only, no sample-rate track)."""

    params = (["hopfield", "hopfield_mnist"], ["fused", "generic"], DEVICES)
    param_names = ["case", "step", "device"]
    timeout = 300
