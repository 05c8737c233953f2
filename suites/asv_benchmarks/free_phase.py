"""asv benchmarks: free-phase throughput (closed-form vs autograd step) and the time and memory of
one EP / BPTT training step as the number of nudged / backpropagated steps T2 grows.

The cases, callables and memory probe are shared with the pytest-benchmark suite
(suites/throughput) through eqbench.perf, so the two flavours measure the same thing.
"""

from __future__ import annotations

import statistics
import time

from eqbench.perf import CASES, configure_threads, free_phase_fn, graph_bytes, make_case, train_step_fn

configure_threads()  # $EQBENCH_NUM_THREADS, when set

#: step name → (closed_form, fast) arguments of free_phase_fn
STEPS = {"closed_form": (True, True), "autograd": (False, True), "fused": (True, True), "generic": (True, False)}


class FreePhase:
    """One free phase of the case's T steps from the model's initial state (eqbench.perf.CASES: P_MLP 784-512-10
    at batch 128, T=30; Laydevant's bin_W and bin_W_N nets; Bal & Sengupta's SNLI model, which has no closed
    form, so both steps run autograd)."""

    params = (["mlp", "bin_w", "bin_wn", "seq_snli"], ["closed_form", "autograd"])
    param_names = ["case", "step"]
    timeout = 120

    def setup(self, case: str, step: str) -> None:
        spec = CASES[case]
        model, x, _ = make_case(case)
        self.sample_steps = x.shape[0] * spec.T
        closed_form, fast = STEPS[step]
        self.run = free_phase_fn(model, x, spec.T, closed_form=closed_form, fast=fast)

    def time_free_phase(self, case: str, step: str) -> None:
        self.run()

    def track_sample_steps_per_second(self, case: str, step: str) -> float:
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
    saved for backward (eqbench.perf.graph_bytes): flat in T2 for EP, linear for BPTT.
    """

    params = (["EP", "BPTT"], [5, 10, 20, 40])
    param_names = ["algo", "T2"]
    timeout = 300

    def setup(self, algo: str, T2: int) -> None:
        model, x, y = make_case("mlp")
        self.run = train_step_fn(algo, model, x, y, T2)

    def time_train_step(self, algo: str, T2: int) -> None:
        self.run()

    def peakmem_train_step(self, algo: str, T2: int) -> None:
        self.run()

    def track_graph_bytes(self, algo: str, T2: int) -> int:
        return graph_bytes(self.run)

    track_graph_bytes.unit = "bytes"


class HopfieldFreePhase(FreePhase):
    """One free phase of Gammell et al.'s Hopfield networks: the fused Euler step (one addmm + clamp)
    against the engine's generic closed-form loop."""

    params = (["hopfield", "hopfield_mnist"], ["fused", "generic"])
