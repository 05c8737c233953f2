"""The baselines registry: the shipped files load and keep their promises; malformed files fail with one line
naming the file, the entry and the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from eqbench.cli import main
from eqbench.config import RunConfig
from eqbench.errors import ConfigError, RegistryError
from eqbench.registry import METRICS, NOT_FOUND, Baseline, default_folder, get_baseline, load_file, load_registry

SHIPPED = Path(__file__).resolve().parents[1] / "baselines"
PAPERS = {"laborieux2021", "gammell2021", "laydevant2021", "bal2023", "dellaferrera2022", "laborieux2022",
          "scellier2017", "ernoult2019", "scellier2023", "srinivasan2024", "stern2021", "elayedam2025", "scellier2026"}

# Laborieux et al. 2021 Table 1 (no dropout rows), baselines.md §1b:
# id → (model, loss, softmax, same_update, rule, estimator, β, T2)
TABLE1 = {
    "cnn-ep-onesided-mse": ("P_CNN", "mse", False, None, "EP", "one_sided", 0.5, 30),
    "cnn-ep-randomsign-mse": ("P_CNN", "mse", False, None, "EP", "random_sign", 0.5, 30),
    "cnn-ep-symmetric-mse": ("P_CNN", "mse", False, None, "EP", "symmetric", 0.5, 30),
    "cnn-bptt-mse": ("P_CNN", "mse", False, None, "BPTT", None, None, 30),
    "cnn-ep-symmetric-ce": ("P_CNN", "ce", True, None, "EP", "symmetric", 1.0, 25),
    "cnn-bptt-ce": ("P_CNN", "ce", True, None, "BPTT", None, None, 25),
    "vfcnn-ep-symmetric-ce": ("VF_CNN", "ce", True, False, "EP", "symmetric", 1.0, 30),
    "vfcnn-ep-symmetric-ce-same-update": ("VF_CNN", "ce", True, True, "EP", "symmetric", 1.0, 30),
    "vfcnn-bptt-ce": ("VF_CNN", "ce", True, False, "BPTT", None, None, 30),
}


@pytest.fixture(scope="module")
def registry() -> dict[str, Baseline]:
    return load_registry()


# ------------------------------------------------------------------------------------------------ shipped files

def test_default_folder_is_the_shipped_one(monkeypatch):
    monkeypatch.delenv("EQBENCH_BASELINES_DIR", raising=False)
    assert default_folder().resolve() == SHIPPED


def test_every_shipped_file_loads(registry):
    stems = {p.stem for p in SHIPPED.glob("*.yaml")}
    assert stems == PAPERS
    total = 0
    for path in sorted(SHIPPED.glob("*.yaml")):
        paper, entries = load_file(path)
        assert paper.key == path.stem and paper.file == f"baselines/{path.name}"
        assert all(e.id.startswith(paper.key + "/") for e in entries)
        total += len(entries)
    assert total == len(registry) > 0, "ids must be unique across files"


def test_provenance_rules(registry):
    for b in registry.values():
        assert b.source.strip(), b.id
        if b.provenance == NOT_FOUND:
            assert b.value is None and b.std is None, b.id
            assert all(s.tolerance is None for s in b.scales.values()), b.id
        else:
            assert b.value is not None, b.id
        if b.metric == "relative_claim":
            assert isinstance(b.value, str) and b.unit == "text", b.id
    assert {b.metric for b in registry.values()} <= set(METRICS)


def test_abstract_numbers_of_laborieux2021(registry):
    sym = registry["laborieux2021/cifar10/cnn-ep-symmetric-ce"]
    one = registry["laborieux2021/cifar10/cnn-ep-onesided-mse"]
    assert (sym.value, sym.metric, sym.unit, sym.provenance) == (11.7, "test_error", "percent", "PAPER-ABSTRACT")
    assert (one.value, one.provenance) == (86, "PAPER-ABSTRACT")
    assert sym.scales["paper"].tolerance is not None and one.scales["paper"].tolerance is not None
    assert "tolerance" in sym.notes.lower() and "tolerance" in one.notes.lower()


def test_laborieux2021_table1_has_exactly_the_nine_rows(registry):
    ids = {k.rsplit("/", 1)[1] for k in registry if k.startswith("laborieux2021/cifar10/")}
    assert ids == set(TABLE1)
    assert "main_dropout.py" in registry["laborieux2021/cifar10/cnn-ep-symmetric-ce"].paper.notes


def test_ci_bands_are_labelled_as_eqbench_measurements(registry):
    ci = [b for b in registry.values() if "ci" in b.scales]
    assert len(ci) >= 6
    for b in ci:
        band = b.scales["ci"].band
        assert band.low < band.high and band.seeds >= 3
        assert "eqbench" in band.measured and "not a published number" in band.note
        # a ci reproduction is never presented as a published value
        assert b.value is None or b.provenance != "NOT-FOUND"


@pytest.mark.parametrize("row", sorted(TABLE1))
def test_laborieux2021_paper_scale_follows_section_1b(registry, row):
    model, loss, softmax, same_update, rule, estimator, beta, T2 = TABLE1[row]
    entry = registry[f"laborieux2021/cifar10/{row}"]
    assert set(entry.scales) == {"paper"}
    scale = entry.scales["paper"]
    cfg = RunConfig.from_dict(scale.raw["config"])  # independently of the loader
    assert isinstance(scale.config, RunConfig) and cfg == scale.config
    want_model = {"name": model, "in_shape": [3, 32, 32], "channels": [128, 256, 512, 512], "kernels": [3, 3, 3, 3],
                  "strides": [1, 1, 1, 1], "paddings": [1, 1, 1, 0], "pools": "mmmm", "fc": [10],
                  "act": "my_hard_sig", "loss": loss, "softmax": softmax}
    if same_update is not None:
        want_model["same_update"] = same_update
    assert cfg.model == want_model
    want_rule = {"name": rule, "T1": 250, "T2": T2}
    if rule == "EP":
        want_rule.update(beta=beta, estimator=estimator)
    assert cfg.rule == want_rule
    assert (cfg.optimizer.name, cfg.optimizer.lrs, cfg.optimizer.wds, cfg.optimizer.momentum) == \
        ("sgd", [0.25, 0.15, 0.1, 0.08, 0.05], [3.0e-4] * 5, 0.9)
    assert (cfg.schedule.name, cfg.schedule.T_max, cfg.schedule.eta_min) == ("cosine", 100, 1.0e-5)
    assert (cfg.data.name, cfg.data.batch_size, cfg.data.test_batch_size, cfg.data.augment) == \
        ("cifar10", 128, 200, True)
    assert (cfg.epochs, cfg.dtype, cfg.device) == (120, "float32", "cuda")
    assert (scale.tolerance is not None) == (entry.value is not None)


@pytest.mark.parametrize("row", sorted(TABLE1))
def test_laborieux2021_paper_scale_builds(registry, row):
    pytest.importorskip("torch")
    from eqbench.models import build_model
    from eqbench.rules.algorithms import build_rule

    cfg = registry[f"laborieux2021/cifar10/{row}"].scales["paper"].config
    model_kw, rule_kw = dict(cfg.model), dict(cfg.rule)
    build_model(model_kw.pop("name"), **model_kw)
    build_rule(rule_kw.pop("name"), **rule_kw)


def test_get_baseline(registry):
    assert get_baseline("laborieux2021/cifar10/cnn-ep-symmetric-ce").value == 11.7
    with pytest.raises(ConfigError, match=r"unknown baseline .*did you mean laborieux2021/cifar10/cnn-ep-symmetric-ce"):
        get_baseline("laborieux2021/cifar10/cnn-ep-symetric-ce")


def test_cli_json(registry, capsys):
    assert main(["baselines", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == list(registry)
    required = {"id", "paper", "dataset", "metric", "value", "std", "unit", "provenance", "source", "scales"}
    for r in rows:
        assert required <= set(r), r["id"]
        assert isinstance(r["scales"], list)
    assert next(r for r in rows if r["id"] == "laborieux2021/cifar10/cnn-ep-symmetric-ce")["scales"] == ["paper"]


def test_cli_table(capsys):
    assert main(["baselines"]) == 0
    out = capsys.readouterr().out
    assert "PAPER-ABSTRACT" in out and "NOT FOUND" in out


# ------------------------------------------------------------------------------------------------ malformed files

def _entry(**kw) -> dict:
    e = {"id": "demo2020/mnist/mlp", "dataset": "mnist", "architecture": "784-500-10", "algorithm": "EP",
         "variant": "one-sided", "metric": "test_error", "value": 2.5, "std": None, "n_runs": None, "unit": "percent",
         "epochs": 10, "provenance": "REPO-LOG", "source": "baselines.md §0: made up for a test"}
    e.update(kw)
    return e


def _config() -> dict:
    return {"model": {"name": "P_MLP", "sizes": [784, 500, 10]},
            "rule": {"name": "EP", "beta": 0.5, "T1": 20, "T2": 4, "estimator": "one_sided"},
            "optimizer": {"name": "sgd", "lrs": [0.1, 0.05]},
            "data": {"name": "mnist", "batch_size": 20}, "epochs": 10}


def _file(key: str = "demo2020", entries: list | None = None) -> dict:
    return {"paper": {"key": key, "title": "A demo", "authors": "Nobody", "year": 2020, "venue": "Nowhere"},
            "baselines": [_entry()] if entries is None else entries}


def _write(folder: Path, data: dict | str, stem: str = "demo2020") -> Path:
    path = folder / f"{stem}.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def _error(folder: Path) -> str:
    with pytest.raises(RegistryError) as info:
        load_registry(folder=folder)
    msg = str(info.value)
    assert "\n" not in msg, msg
    return msg


def test_minimal_file_is_valid(tmp_path):
    _write(tmp_path, _file(entries=[_entry(scales={"paper": {"config": _config(), "tolerance": 0.5}})]))
    (b,) = load_registry(folder=tmp_path).values()
    assert b.id == "demo2020/mnist/mlp" and b.scales["paper"].tolerance == 0.5
    assert b.to_summary()["scales"] == ["paper"]


def test_a_band_is_read_whole(tmp_path):
    """Every field of a ci band reaches the Baseline (``eqbench run`` prints and compares them); low = high is a
    band too (a single value)."""
    band = _band(low=90.0, high=90.0, seeds=5, measured="eqbench, 5 seeds", note="not a published number")
    _write(tmp_path, _file(entries=[_entry(scales={"ci": {"config": _config(), "band": band}})]))
    (b,) = load_registry(folder=tmp_path).values()
    got = b.scales["ci"].band
    assert (got.low, got.high, got.metric, got.seeds, got.measured, got.note) == \
        (90.0, 90.0, "test_accuracy", 5, "eqbench, 5 seeds", "not a published number")


def test_env_var_folder(tmp_path, monkeypatch):
    _write(tmp_path, _file())
    monkeypatch.setenv("EQBENCH_BASELINES_DIR", str(tmp_path))
    assert list(load_registry()) == ["demo2020/mnist/mlp"]


def _band(**kw) -> dict:
    b = {"low": 80.0, "high": 95.0, "metric": "test_accuracy", "seeds": 3, "measured": "eqbench, mean ± std"}
    b.update(kw)
    return b


ENTRY = "entry 'demo2020/mnist/mlp'"
BAD = {
    "wrong type for value": (
        {"value": "abc"}, "field 'value': expected a number or null, got 'abc'"),
    "bool is not a number": (
        {"value": True}, "field 'value': expected a number or null, got True"),
    "unknown key": (
        {"colour": "red"}, "field 'colour': unknown field; known: id, dataset"),
    "empty source": (
        {"source": ""}, "field 'source': expected a non-empty string, got ''"),
    "NOT-FOUND with a value": (
        {"provenance": "NOT-FOUND"}, "field 'value': must be null when provenance is NOT-FOUND, got 2.5"),
    "a value needs a source tag": (
        {"value": None}, "field 'value': null needs provenance NOT-FOUND; provenance is REPO-LOG"),
    "unknown provenance": (
        {"provenance": "MEMORY"}, "field 'provenance': expected one of PAPER-ABSTRACT, REPO-CMD"),
    "unknown metric": (
        {"metric": "f1"}, "field 'metric': expected one of test_error"),
    "percent out of range": (
        {"value": 250}, "field 'value': a percent value must lie in [0, 100], got 250"),
    "claim needs text": (
        {"metric": "relative_claim", "unit": "text"}, "field 'value': expected the claim's text"),
    "text unit needs a claim": (
        {"unit": "text"}, "field 'unit': unit text goes with metric relative_claim"),
    "negative std": (
        {"std": -1.0}, "field 'std': must be ≥ 0, got -1.0"),
    "n_runs integer": (
        {"n_runs": 2.5}, "field 'n_runs': expected an integer or null, got 2.5"),
    "id prefix": (
        {"id": "other2020/mnist/mlp"}, "entry 'other2020/mnist/mlp' field 'id': must start with the paper key"),
    "bad band": (
        {"scales": {"ci": {"config": _config(), "band": _band(low=95.0, high=80.0)}}},
        "field 'scales.ci.band.low': low (95.0) must be ≤ high (80.0)"),
    "band unknown key": (
        {"scales": {"ci": {"config": _config(), "band": _band(mean=90.0)}}},
        "field 'scales.ci.band.mean': unknown field"),
    "scale unknown key": (
        {"scales": {"paper": {"config": _config(), "tolerence": 1.0}}},
        "field 'scales.paper.tolerence': unknown field; known: config, tolerance, band"),
    "tolerance without a value": (
        {"value": None, "provenance": "NOT-FOUND", "scales": {"paper": {"config": _config(), "tolerance": 1.0}}},
        "field 'scales.paper.tolerance': a tolerance needs a numeric value"),
    "paper scale on another dataset": (
        {"dataset": "fashion_mnist", "scales": {"paper": {"config": _config()}}},
        "field 'scales.paper.config.data.name': a paper scale trains on the entry's dataset 'fashion_mnist'"),
    "paper scale with other epochs": (
        {"epochs": 20, "scales": {"paper": {"config": _config()}}},
        "field 'scales.paper.config.epochs': a paper scale runs the entry's 20 epochs, got 10"),
    "bad scale name": (
        {"scales": {"Paper": {"config": _config()}}},
        "field 'scales.Paper': a scale name is lowercase letters, digits and _ (e.g. paper, ci)"),
    "empty scales": (
        {"scales": {}}, "field 'scales': expected a non-empty mapping of scale name to scale, got a mapping"),
    "a claim needs an error band": (
        {"scales": {"ci": {"config": _config(), "band": _band(),
                           "claim": {"of": "a/b", "versus": "a/c", "max_gap": 1.0}}}},
        "field 'scales.ci.claim': a claim compares errors: the scale needs a band with an error metric"),
    "a scale's config is checked": (
        {"scales": {"ci": {"config": {**_config(), "epochs": 0}}}},
        "field 'scales.ci.config': scales.ci.config.epochs must be a positive integer, got 0"),
    "negative tolerance": (
        {"scales": {"paper": {"config": _config(), "tolerance": -0.5}}},
        "field 'scales.paper.tolerance': must be ≥ 0, got -0.5"),
    "id format": (
        {"id": "demo2020/MNIST/mlp"},
        "field 'id': expected lowercase path segments joined by '/' (letters, digits, _ . + -)"),
    "dataset name": (
        {"dataset": "MNIST-5k"}, "field 'dataset': expected an eqbench dataset name (e.g. cifar10, fashion_mnist), "
                                 "got 'MNIST-5k'"),
    "long algorithm": (
        {"algorithm": "EP with a very long description that belongs in variant"},
        "field 'algorithm': keep it short"),
    "std without a value": (
        {"value": None, "provenance": "NOT-FOUND", "std": 0.1},
        "field 'std': a std needs a numeric value; value is null"),
    "zero epochs": (
        {"epochs": 0}, "field 'epochs': must be ≥ 1, got 0"),
    "band low not a number": (
        {"scales": {"ci": {"config": _config(), "band": _band(low="eighty")}}},
        "field 'scales.ci.band.low': expected a number, got 'eighty'"),
    "band high not a number": (
        {"scales": {"ci": {"config": _config(), "band": _band(high=None)}}},
        "field 'scales.ci.band.high': expected a number, got null"),
    "band low out of range": (
        {"scales": {"ci": {"config": _config(), "band": _band(low=-5.0)}}},
        "field 'scales.ci.band.low': a percent value must lie in [0, 100], got -5.0"),
    "band high out of range": (
        {"scales": {"ci": {"config": _config(), "band": _band(high=101.0)}}},
        "field 'scales.ci.band.high': a percent value must lie in [0, 100], got 101.0"),
    "band metric": (
        {"scales": {"ci": {"config": _config(), "band": _band(metric="relative_claim")}}},
        "field 'scales.ci.band.metric': expected one of"),
    "band seeds": (
        {"scales": {"ci": {"config": _config(), "band": _band(seeds=0)}}},
        "field 'scales.ci.band.seeds': must be ≥ 1, got 0"),
    "band measured": (
        {"scales": {"ci": {"config": _config(), "band": _band(measured="")}}},
        "field 'scales.ci.band.measured': expected a non-empty string, got ''"),
    "band note": (
        {"scales": {"ci": {"config": _config(), "band": _band(note=3)}}},
        "field 'scales.ci.band.note': expected a non-empty string or null, got 3 (quote it)"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_entry(tmp_path, case):
    change, expected = BAD[case]
    path = _write(tmp_path, _file(entries=[_entry(**change)]))
    msg = _error(tmp_path)
    entry = ENTRY if "field 'id'" not in expected else ""
    assert msg.startswith(f"{path}: {entry}"), msg
    assert expected in msg, msg


# spelled out, not imported from eqbench.registry: a field dropped there must fail here (id: named by index, below)
@pytest.mark.parametrize("field", ["dataset", "architecture", "algorithm", "variant", "metric", "value", "unit",
                                   "epochs", "provenance", "source"])
def test_every_required_entry_field_is_refused_when_missing(tmp_path, field):
    """A baseline without its provenance tag (or its source, value, unit, …) is no baseline: one line naming it."""
    e = _entry()
    del e[field]
    path = _write(tmp_path, _file(entries=[e]))
    assert _error(tmp_path) == f"{path}: {ENTRY} field '{field}': missing (required)"


def test_bad_reproduction_config(tmp_path):
    cfg = _config()
    del cfg["optimizer"]["lrs"]
    path = _write(tmp_path, _file(entries=[_entry(scales={"paper": {"config": cfg}})]))
    msg = _error(tmp_path)
    assert msg.startswith(f"{path}: {ENTRY} field 'scales.paper.config': "), msg
    assert "optimizer is missing lrs" in msg


def test_entry_without_id_is_named_by_index(tmp_path):
    e = _entry()
    del e["id"]
    path = _write(tmp_path, _file(entries=[_entry(id="demo2020/a"), e]))
    assert _error(tmp_path) == f"{path}: entry baselines[1] field 'id': missing (required)"


def test_entry_not_a_mapping(tmp_path):
    path = _write(tmp_path, _file(entries=[5]))
    assert _error(tmp_path) == f"{path}: entry baselines[0]: expected a mapping, got 5"


def test_duplicate_id(tmp_path):
    # ids start with the paper key and the key is the file stem, so a repeat can only sit in one file; across
    # files the same check runs on the registry as a whole
    _write(tmp_path, _file("aaa2020", [_entry(id="aaa2020/mnist/x")]), "aaa2020")
    path = _write(tmp_path, _file(entries=[_entry(id="demo2020/mnist/x"), _entry(id="demo2020/mnist/x")]))
    msg = _error(tmp_path)
    assert msg.startswith(f"{path}: entry 'demo2020/mnist/x' field 'id': duplicate id (baselines[1])"), msg
    assert f"already defined in {path}" in msg


def test_invalid_yaml(tmp_path):
    path = _write(tmp_path, "paper: {key: demo2020\nbaselines: [\n")
    msg = _error(tmp_path)
    assert msg.startswith(f"{path}: not valid YAML at line "), msg


def test_paper_key_must_match_stem(tmp_path):
    path = _write(tmp_path, _file("demo2021", [_entry(id="demo2021/mnist/mlp")]))
    assert _error(tmp_path) == f"{path}: field 'paper.key': must equal the file stem 'demo2020', got 'demo2021'"


def test_paper_unknown_and_unquoted_fields(tmp_path):
    data = _file()
    data["paper"]["doi"] = "10.1/x"
    path = _write(tmp_path, data)
    assert _error(tmp_path).startswith(f"{path}: field 'paper.doi': unknown field")
    data = _file()
    data["paper"]["arxiv"] = 2006.03824  # unquoted in YAML: a float, and its trailing zeros are gone
    _write(tmp_path, data)
    assert "field 'paper.arxiv': expected a non-empty string or null, got 2006.03824 (quote it)" in _error(tmp_path)


def test_top_level(tmp_path):
    path = _write(tmp_path, {"paper": _file()["paper"], "baselines": [], "extra": 1})
    assert _error(tmp_path).startswith(f"{path}: field 'extra': unknown field")
    _write(tmp_path, {"paper": _file()["paper"], "baselines": {"a": 1}})
    assert "field 'baselines': expected a list" in _error(tmp_path)
    _write(tmp_path, "")
    assert _error(tmp_path) == f"{path}: expected a mapping, got null"


def test_yml_files_are_not_skipped_silently(tmp_path):
    path = tmp_path / "demo2020.yml"
    path.write_text(yaml.safe_dump(_file()))
    assert _error(tmp_path) == f"{path}: registry files end in .yaml (this one would be skipped)"


def test_empty_baselines_list_is_fine(tmp_path):
    _write(tmp_path, _file(entries=[]))
    assert load_registry(folder=tmp_path) == {}


def test_cli_reports_a_bad_file_in_one_line(tmp_path, monkeypatch, capsys):
    path = _write(tmp_path, _file(entries=[_entry(value="abc")]))
    monkeypatch.setenv("EQBENCH_BASELINES_DIR", str(tmp_path))
    assert main(["baselines", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"eqbench: error: {path}: {ENTRY} field 'value'")


def test_shipped_files_stay_valid_when_copied(tmp_path, registry):
    # the loader does not depend on where the folder is; mutating a copy of a real file is caught
    for path in SHIPPED.glob("*.yaml"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert list(load_registry(folder=tmp_path)) == list(registry)
    data = yaml.safe_load((SHIPPED / "laborieux2021.yaml").read_text(encoding="utf-8"))
    bad = copy.deepcopy(data)
    (entry,) = [e for e in bad["baselines"] if e["id"] == "laborieux2021/cifar10/cnn-ep-symmetric-ce"]
    del entry["scales"]["paper"]["config"]["optimizer"]["lrs"]
    _write(tmp_path, bad, "laborieux2021")
    msg = _error(tmp_path)
    assert "optimizer is missing lrs" in msg
    assert "entry 'laborieux2021/cifar10/cnn-ep-symmetric-ce' field 'scales.paper.config'" in msg


def test_claim_must_name_registry_entries(tmp_path):
    """A relative claim names the relative_claim entry it checks and a run with a band of the same scale it is
    compared with; each wrong name is the whole line of the entry and field, whatever scales come before it."""
    ci = {"config": {**_config(), "data": {"name": "mnist5k", "batch_size": 20}},
          "band": {"low": 1.0, "high": 9.0, "metric": "test_error", "seeds": 3, "measured": "a test"}}
    claim = _entry(id="demo2020/mnist/claim", metric="relative_claim", unit="text", value="as good as", std=None)
    ref = _entry(id="demo2020/mnist5k/ref", dataset="mnist5k", scales={"ci": ci})
    unbanded = _entry(id="demo2020/mnist5k/unbanded", dataset="mnist5k", scales={"ci": {"config": ci["config"]}})
    other = {"other": {"config": ci["config"]}}  # a scale without a claim, checked before the ci scale
    run = _entry(id="demo2020/mnist5k/run", dataset="mnist5k", scales={**other, "ci": {
        **ci, "claim": {"of": "demo2020/mnist/claim", "versus": "demo2020/mnist5k/ref", "max_gap": 1.0}}})
    path = _write(tmp_path, _file(entries=[claim, ref, unbanded, run]))
    assert load_registry(folder=tmp_path)["demo2020/mnist5k/run"].scales["ci"].claim.max_gap == 1.0
    where = f"{path}: entry 'demo2020/mnist5k/run' field 'scales.ci.claim"
    for versus in ("demo2020/mnist5k/nope", "demo2020/mnist/claim", "demo2020/mnist5k/unbanded"):
        run["scales"]["ci"]["claim"]["versus"] = versus  # unknown; without a ci scale; a ci scale without a band
        _write(tmp_path, _file(entries=[claim, ref, unbanded, run]))
        assert _error(tmp_path) == f"{where}.versus': {versus!r} has no ci scale with a band to compare with"
    run["scales"]["ci"]["claim"].update(versus="demo2020/mnist5k/ref", of="demo2020/mnist5k/ref")
    _write(tmp_path, _file(entries=[claim, ref, unbanded, run]))
    assert _error(tmp_path) == f"{where}.of': 'demo2020/mnist5k/ref' is not a relative_claim entry of the registry"


def test_the_bounds_themselves_are_valid(tmp_path):
    """Each limit is inclusive: 100 %, a std and a tolerance of 0, an algorithm name of exactly 24 characters,
    a ratio of 1."""
    entries = [_entry(value=100.0, std=0.0, algorithm="x" * 24,
                      scales={"paper": {"config": _config(), "tolerance": 0.0}}),
               _entry(id="demo2020/mnist/ratio", unit="ratio", value=1.0)]
    _write(tmp_path, _file(entries=entries))
    assert [b.value for b in load_registry(folder=tmp_path).values()] == [100.0, 1.0]


def test_a_papers_optional_fields_reach_it(tmp_path):
    _write(tmp_path, _with_paper(arxiv="2006.03824", repository="https://example.org/r", commit="abc123",
                                 notes="a note"))
    (b,) = load_registry(folder=tmp_path).values()
    assert (b.paper.arxiv, b.paper.repository, b.paper.commit, b.paper.notes) == \
        ("2006.03824", "https://example.org/r", "abc123", "a note")


def test_an_unknown_id_names_the_closest_or_the_count(tmp_path):
    """`get_baseline` reads the folder it is given; an unknown id lists the closest ids (at most five, the
    closest first) or, with none close, how many there are."""
    ids = [f"demo2020/mnist/mlp{'abcdefg'[:k]}" for k in range(1, 8)]  # each one letter further from ".../mlp"
    _write(tmp_path, _file(entries=[_entry(id=i) for i in reversed(ids)]))
    assert get_baseline(ids[2], folder=tmp_path).id == ids[2]
    with pytest.raises(ConfigError) as e:
        get_baseline("demo2020/mnist/mlp", folder=tmp_path)
    assert str(e.value) == f"unknown baseline 'demo2020/mnist/mlp'; did you mean {', '.join(ids[:5])}?"
    with pytest.raises(ConfigError) as e:
        get_baseline("nothing/like/it", folder=tmp_path)
    assert str(e.value) == "unknown baseline 'nothing/like/it'; 7 ids, see `eqbench baselines`"


def test_a_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "demo2020.yaml"
    path.write_bytes(b"paper: \xff\n")
    assert _error(tmp_path) == (f"{path}: not valid YAML: 'utf-8' codec can't decode byte 0xff in position 7: "
                                "invalid start byte")


def test_unparsable_yaml_and_a_missing_folder_are_one_line(tmp_path):
    path = _write(tmp_path, "paper: [unclosed\n")
    msg = _error(tmp_path)
    assert msg == f"{path}: not valid YAML at line 2, column 1: did not find expected ',' or ']'", msg
    with pytest.raises(ConfigError) as info:
        load_registry(folder=tmp_path / "nowhere")
    assert str(info.value) == f"baselines folder {tmp_path / 'nowhere'} does not exist"


def _with_paper(**kw) -> dict:
    f = _file()
    f["paper"].update(kw)
    return f


def _with_claim(**kw) -> dict:
    claim = {"of": "a/b", "versus": "a/c", "max_gap": 1.0, **kw}
    band = _band(metric="test_error", low=1.0, high=9.0)
    return _file(entries=[_entry(scales={"ci": {"config": _config(), "band": band, "claim": claim}})])


#: (file, the whole line after "<path>: "): every field of the paper, a claim and an entry not covered by BAD
WHOLE_LINES = {
    "paper key": (_with_paper(key=5), "field 'paper.key': expected a non-empty string, got 5 (quote it)"),
    "paper title": (_with_paper(title=""), "field 'paper.title': expected a non-empty string, got ''"),
    "paper authors": (_with_paper(authors=None), "field 'paper.authors': expected a non-empty string, got null"),
    "paper venue": (_with_paper(venue=3), "field 'paper.venue': expected a non-empty string, got 3 (quote it)"),
    "paper year too early": (_with_paper(year=1899), "field 'paper.year': must be ≥ 1900, got 1899"),
    "paper year a string": (_with_paper(year="2020"), "field 'paper.year': expected an integer, got '2020'"),
    "claim of": (_with_claim(of=""), f"{ENTRY} field 'scales.ci.claim.of': expected a non-empty string, got ''"),
    "claim versus": (_with_claim(versus=7),
                     f"{ENTRY} field 'scales.ci.claim.versus': expected a non-empty string, got 7 (quote it)"),
    "claim max_gap": (_with_claim(max_gap=-1.0), f"{ENTRY} field 'scales.ci.claim.max_gap': must be ≥ 0, got -1.0"),
    "claim note": (_with_claim(note=5), f"{ENTRY} field 'scales.ci.claim.note': expected a non-empty string or "
                                        "null, got 5 (quote it)"),
    "unit": (_file(entries=[_entry(unit="percentage")]),
             f"{ENTRY} field 'unit': expected one of percent, ratio, cost, text, got 'percentage'"),
    "notes": (_file(entries=[_entry(notes=4)]),
              f"{ENTRY} field 'notes': expected a non-empty string or null, got 4 (quote it)"),
    "n_runs": (_file(entries=[_entry(n_runs=0)]), f"{ENTRY} field 'n_runs': must be ≥ 1, got 0"),
    "dataset": (_file(entries=[_entry(dataset=5)]),
                f"{ENTRY} field 'dataset': expected a non-empty string, got 5 (quote it)"),
    "id": (_file(entries=[_entry(id=3)]),
           "entry baselines[0] field 'id': expected a non-empty string, got 3 (quote it)"),
    "baselines a mapping": ({**_file(), "baselines": {"a": 1}},
                            "field 'baselines': expected a list of entries (or []), got a mapping"),
    "YAML": ("paper: [1, 2\n", "not valid YAML at line 2, column 1: did not find expected ',' or ']'"),
    "YAML tag": ("paper: !!int x\n", "not valid YAML: invalid literal for int() with base 10: 'x'"),
    "YAML control character": ("paper: \x00x\n", "not valid YAML: unacceptable character #x0000: control "
                                                 "characters are not allowed in \"<unicode string>\", position 7"),
    "id prefix": (_file(entries=[_entry(id="other2020/mnist/mlp")]),
                  "entry 'other2020/mnist/mlp' field 'id': must start with the paper key 'demo2020/'"),
    "ratio out of range": (_file(entries=[_entry(unit="ratio", value=1.5)]),
                           f"{ENTRY} field 'value': a ratio value must lie in [0, 1], got 1.5"),
    "band a list": (_file(entries=[_entry(scales={"ci": {"config": _config(), "band": [80, 95]}})]),
                    f"{ENTRY} field 'scales.ci.band': expected a mapping, got a list"),
    "band without low": (_file(entries=[_entry(scales={"ci": {"config": _config(), "band": {
        k: v for k, v in _band().items() if k != "low"}}})]),
                         f"{ENTRY} field 'scales.ci.band.low': missing (required)"),
    "std a string": (_file(entries=[_entry(std="abc")]), f"{ENTRY} field 'std': expected a number or null, got 'abc'"),
    "claim with a number": (_file(entries=[_entry(metric="relative_claim", unit="text", value=2.5)]),
                            f"{ENTRY} field 'value': expected the claim's text for metric relative_claim, got 2.5"),
    "claim with a std": (_file(entries=[_entry(metric="relative_claim", unit="text", value="as good as", std=0.1)]),
                         f"{ENTRY} field 'std': a std needs a numeric value; value is 'as good as'"),
    "claim with a tolerance": (
        _file(entries=[_entry(metric="relative_claim", unit="text", value="as good as",
                              scales={"paper": {"config": _config(), "tolerance": 1.0}})]),
        f"{ENTRY} field 'scales.paper.tolerance': a tolerance needs a numeric value to land near; value is "
        "'as good as'"),
    "claim unknown field": (_with_claim(colour="red"), f"{ENTRY} field 'scales.ci.claim.colour': unknown field; "
                                                       "known: of, versus, max_gap, note"),
}


@pytest.mark.parametrize("case", sorted(WHOLE_LINES))
def test_a_malformed_field_gets_its_whole_line(tmp_path, case):
    data, expected = WHOLE_LINES[case]
    path = _write(tmp_path, data)
    assert _error(tmp_path) == f"{path}: {expected}"


def test_the_summary_of_a_baseline_carries_every_field(tmp_path):
    """What `eqbench baselines --json` prints per baseline."""
    _write(tmp_path, _file(entries=[_entry(notes="a note", n_runs=5, std=0.1,
                                           scales={"paper": {"config": _config(), "tolerance": 0.5}})]))
    (b,) = load_registry(folder=tmp_path).values()
    assert b.to_summary() == {
        "id": "demo2020/mnist/mlp", "paper": "demo2020", "file": str(tmp_path / "demo2020.yaml"), "dataset": "mnist",
        "architecture": "784-500-10", "algorithm": "EP", "variant": "one-sided", "metric": "test_error",
        "value": 2.5, "std": 0.1, "n_runs": 5, "unit": "percent", "epochs": 10, "provenance": "REPO-LOG",
        "source": "baselines.md §0: made up for a test", "notes": "a note", "scales": ["paper"]}
    assert (b.paper.year, b.paper.title, b.notes, b.std, b.scales["paper"].raw["tolerance"]) == \
        (2020, "A demo", "a note", 0.1, 0.5)


def test_the_registry_reads_as_utf8_whatever_the_locale(ascii_locale, registry):
    """The shipped files are UTF-8 (≥, ±, § in sources and notes): they load the same under an ASCII locale."""
    assert load_registry() == registry
