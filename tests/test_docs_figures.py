"""The docs quote no figure by hand (issue 36): every page's numbers come from measurement files through the
``{measured}`` role and the ``measured-table`` directive of docs/_ext/measured.py, which the build resolves; and the
pages' Python examples run (docs/_ext/eqbench_docs.py runs them in the build).

The same checks run in ``make docs`` (a warning there is an error); here they run without Sphinx, so ``make test``
fails on a stale or hand-copied figure too. Controls: a hand-copied figure, a missing key, a missing file and a file
without provenance are each found and named.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "_ext"))
import eqbench_docs  # noqa: E402  (the docs extensions, not installed modules)
import measured  # noqa: E402

PAGES = sorted(p for p in (ROOT / "docs").rglob("*.md") if not {"generated", "_build"} & set(p.parts))
PAGES.append(ROOT / "README.md")  # the front door quotes no figure at all (GitHub renders no role)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_page_quotes_no_figure_by_hand_and_resolves_every_quoted_one(page):
    text = page.read_text(encoding="utf-8")
    assert measured.hand_copied(text) == []
    if page.name == "README.md":
        assert not measured.ROLE.search(text) and not measured.TABLE.search(text)
    _, problems = measured.render(text)
    assert problems == []


def test_every_measurement_file_the_docs_quote_has_its_provenance():
    quoted = {m.split(":", 1)[0] for p in PAGES for m in measured.ROLE.findall(p.read_text(encoding="utf-8"))}
    quoted |= {m.group(1) for p in PAGES for m in measured.TABLE.finditer(p.read_text(encoding="utf-8"))}
    assert quoted, "the docs quote no measurement file: the scan itself is broken"
    for file in sorted(quoted):
        assert "written by" in measured.provenance(file), file


def test_hand_copied_figures_are_found_and_settings_in_code_are_not():
    page = ("The free phase took 3.1 s, 12 % less than before, and the error is 2.5e-6 (ratio 2.00).\n"
            "A `β = 0.5` setting, a 3×3 conv and `the error × 2` are not figures; nor is {measured}`f.json:a|{} %`.\n"
            "| case | value |\n|---|---|\n| P_MLP | 0.973 |\n"
            "```text\n0.5 s in a code block\n```\n"
            "<!-- table:x (rendered by a command, tested against its JSON there) -->\n| a | 1.5 |\n<!-- /table:x -->\n")
    assert measured.hand_copied(page) == [(1, "3.1 s"), (1, "12 %"), (1, "2.5e-6"), (1, "2.00"), (5, "0.973")]


def _file(tmp_path, monkeypatch, doc):
    monkeypatch.setattr(measured, "ROOT", tmp_path)
    measured.load.cache_clear()
    (tmp_path / "m.json").write_text(json.dumps(doc), encoding="utf-8")
    return "m.json"


PROV = {"command": "python make_it.py", "commit": "abc1234", "machine": "x86_64, 2 CPUs", "date": "2026-12-07"}


def test_roles_and_tables_render_the_file_and_its_provenance(tmp_path, monkeypatch):
    f = _file(tmp_path, monkeypatch, {"rows": [{"id": "a", "t": {"s": 0.5}}, {"id": "b", "t": {"s": 2.25}}],
                                      "errors": {"0.001": 3e-6}, "provenance": PROV})
    text, problems = measured.render(
        f"b took {{measured}}`{f}:rows[id=b].t.s|*1000 {{:,.0f}} ms`, error {{measured}}`{f}:errors[0.001]|{{:.1e}}`.\n"
        f"```{{measured-table}} {f}\n:rows: rows\n:columns: id=id; time=t.s|{{:.2f}} s\n```\n")
    assert problems == []
    assert "b took 2,250 ms, error 3.0e-06." in text
    assert "| a | 0.50 s |\n| b | 2.25 s |" in text
    assert re.search(r"written by `python make_it.py` at commit `abc1234` \(.*\) on x86_64, 2 CPUs, 2026-12-07", text)


def test_a_missing_key_file_or_provenance_is_named(tmp_path, monkeypatch):
    f = _file(tmp_path, monkeypatch, {"rows": [{"id": "a"}, {"id": "a"}], "provenance": PROV})
    _, problems = measured.render(f"{{measured}}`{f}:rows[id=b].x` {{measured}}`{f}:rows[id=a]` "
                                  f"{{measured}}`{f}:nothing.here` {{measured}}`gone.json:x`")
    assert problems == [f"{f}: rows[id=b].x: [id=b] matches 0 records, not one",
                        f"{f}: rows[id=a]: [id=a] matches 2 records, not one",
                        f"{f}: no key 'nothing.here' (stops at 'nothing')", "gone.json: no such measurement file"]
    f = _file(tmp_path, monkeypatch, {"x": 1, "provenance": {**PROV, "commit": ""}})
    assert measured.render(f"{{measured}}`{f}:x`")[1] == [f"{f}: its provenance lacks commit"]


def test_a_failing_python_example_is_named_with_its_line_and_a_working_one_is_not():
    page = ("# A page\n\n```python\nx = 1 + 1\nassert x == 2\n```\n\n```python\nfrom eqbench import nothing_here\n```\n"
            "```bash\nexit 1\n```\n")
    assert eqbench_docs.example_failures(page) == [
        (8, "ImportError: cannot import name 'nothing_here' from 'eqbench' (" + str(ROOT / "eqbench" / "__init__.py")
         + ")")]


def test_a_published_value_is_quoted_from_the_registry_with_its_provenance_tag():
    text, problems = measured.render("{baseline}`scellier2023/cifar10/speedup-vs-laborieux2021` and "
                                     "{baseline}`scellier2023/no/such-entry`")
    assert text == "simulations 13.5× faster than Laborieux et al. 2021 [PAPER-ABSTRACT] and ?"
    assert problems == ["baselines/: no entry 'scellier2023/no/such-entry'"]
