"""The measuring half of the regression gate (``eqbench regress``): one process, one commit.

It runs as a script (``python -P eqbench/gate_worker.py JOB.json``) of the checkout that holds the benchmark
definitions, with ``PYTHONPATH`` pointing at one commit's installed eqbench: so every ``import eqbench`` here is
that commit's, and nothing of the gate's own eqbench is imported (``-P``: the script's folder is not put on
``sys.path``). The job lists tasks; the answer is one JSON object per task, written to the job's ``out`` file.

Task kinds, with asv's semantics for the benchmarks of suites/asv_benchmarks (``setup`` is not timed; a
``NotImplementedError`` raised there means skipped):

* ``tracked`` — ``eqbench.tracking.measure([entry])`` on one intra-op thread (``entry``: a family, or
  ``family/case``): ``{"values": {key: value}}``;
* ``time`` — one warm-up call, then ``repeat`` timed calls: ``{"samples": [...]}`` in seconds;
* ``peakmem`` — the process's peak resident memory after one call (run alone in its process, like asv);
* ``track`` — the method's return value.

Failures never stop the other tasks: ``{"error": "one line"}``.
"""

from __future__ import annotations

import importlib
import json
import resource
import sys
import time


def _one_line(exc: BaseException) -> str:
    # eqbench.errors.one_line's twin: this script imports nothing of the gate's own eqbench (see above), and an
    # older commit's eqbench may not have it
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:400]


def run_task(task: dict) -> dict:
    kind = task["kind"]
    if kind == "tracked":
        # lazy: the worker runs in the base commit's checkout; eqbench is imported once the task says what to run
        from eqbench import tracking

        tracking.deterministic_threads()
        return {"values": tracking.measure([task["family"]])}
    module, cls_name, method = task["name"].rsplit(".", 2)
    obj = getattr(importlib.import_module(f"asv_benchmarks.{module}"), cls_name)()
    params = task.get("params", [])
    try:
        obj.setup(*params)
    except NotImplementedError as exc:
        return {"skipped": _one_line(exc)}
    fn = getattr(obj, method)
    if kind == "time":
        fn(*params)
        samples = []
        for _ in range(int(task.get("repeat", 5))):
            t0 = time.perf_counter()
            fn(*params)
            samples.append(time.perf_counter() - t0)
        return {"samples": samples}
    if kind == "peakmem":

        fn(*params)
        return {"value": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}  # Linux reports KiB
    if kind == "track":
        try:
            return {"value": float(fn(*params))}
        except NotImplementedError as exc:
            return {"skipped": _one_line(exc)}
    raise ValueError(f"unknown task kind {kind!r}")


def main(argv: list[str]) -> int:
    with open(argv[1]) as f:
        job = json.load(f)
    sys.path.insert(0, job["suites"])  # the folder holding the asv_benchmarks package
    answers = []
    for task in job["tasks"]:
        try:
            answers.append(run_task(task))
        except Exception as exc:  # recorded as that task's failure; the other tasks go on
            answers.append({"error": _one_line(exc)})
        with open(job["out"], "w") as f:  # after every task: a killed worker keeps what it finished
            json.dump(answers, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
