"""airspeed velocity (asv) benchmarks of the EP engine; configured by asv.conf.json at the repo root.

Run from the repository root, e.g. ``asv run --python=same --quick -b FreePhase`` for a smoke run
in the current interpreter, or ``asv continuous main HEAD`` to compare two commits.
asv.conf.json builds the project as a wheel without dependencies, installs it with the pinned
``constraints.txt`` (which brings torch the first time), then force-reinstalls the wheel alone
so that each commit's code replaces the previous one without reinstalling torch.
``$EQBENCH_NUM_THREADS`` pins torch's thread count (eqbench.timing.configure_threads).
"""
