"""Shared setup of the throughput benchmarks (bench_*.py, pytest-benchmark).

* torch's thread count comes from ``$EQBENCH_NUM_THREADS`` when set (eqbench.timing.configure_threads);
* the benchmark JSON's ``machine_info`` records the torch version, the CUDA device and the threads;
* `throughput_report` collects lines (ratios, targets, memory tables) that are printed in the
  terminal summary, so that a ``--benchmark-only`` run shows them without ``-s``.
"""

from __future__ import annotations

import pytest
import torch

from eqbench.timing import THREADS_ENV, configure_threads

_REPORT: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    configure_threads()


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    cuda = torch.cuda.is_available()
    machine_info["torch"] = {
        "version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "cuda_device": torch.cuda.get_device_name(0) if cuda else None,
        "num_threads": torch.get_num_threads(),
        "num_threads_env": THREADS_ENV,
    }


@pytest.fixture
def throughput_report():
    """``report(line)`` appends a line to the terminal summary of the run."""
    return _REPORT.append


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if _REPORT:
        terminalreporter.section("eqbench throughput report")
        for line in _REPORT:
            terminalreporter.write_line(line)
