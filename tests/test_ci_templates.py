"""The CI templates (.github/workflows/eqbench.yml, examples/ci/): each validates against its CI system's schema
(check-jsonschema's vendored SchemaStore schemas for GitHub workflows and GitLab CI), a broken copy does not, and
each runs the commands the README documents.

actionlint (which also checks expressions and shell) is not used: PyPI has it only as an sdist that downloads the
Go binary when it builds, which a machine with no network but the package registries cannot do."""

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
