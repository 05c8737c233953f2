"""Run configs: what a valid YAML file gives (defaults, round trip through the run folder's config.yaml) and the one
line a malformed one gets, which names the file, the field and what is wrong with it."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml

from eqbench.config import DataConfig, RunConfig, ScheduleConfig, has_tf32, load_config
from eqbench.errors import ConfigError

BASE = {
    "model": {"name": "P_MLP", "sizes": [64, 32, 10]},
    "rule": {"name": "EP", "beta": 0.5, "T1": 15, "T2": 5},
    "optimizer": {"name": "sgd", "lrs": [0.2, 0.1]},
    "data": {"name": "digits", "batch_size": 64},
    "epochs": 3,
}
FLIP = {"name": "flip", "lrs": [0.05, 0.02], "gammas": [1e-3, 1e-3], "thresholds": [1e-6, 1e-6]}
KNOWN = ("model, rule, optimizer, data, epochs, schedule, seed, dtype, device, matmul_precision, cuda_graphs, "
         "initial_eval, extra")


def edit(path: str, value=None, delete: bool = False) -> dict:
    """BASE with the field at ``path`` ("optimizer.lrs") set to ``value`` (or deleted)."""
    d = copy.deepcopy(BASE)
    *parents, leaf = path.split(".")
    node = d
    for p in parents:
        node = node[p]
    if delete:
        del node[leaf]
    else:
        node[leaf] = value
    return d


def write(tmp_path, d) -> str:
    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump(d))
    return p


# every malformed field: (config, the whole error line after "<file>")
BAD = [
    (["a", "list"], " must be a mapping, got list"),
    (edit("epochs", delete=True), " is missing epochs"),
    (edit("colour", "blue"), f" has unknown field(s) colour; known: {KNOWN}"),
    (edit("model", "P_MLP"), ".model must be a mapping, got str"),
    (edit("model", 5), ".model must be a mapping, got int"),
    (edit("model.name", delete=True), ".model is missing name"),
    (edit("rule.name", delete=True), ".rule is missing name"),
    (edit("epochs", 0), ".epochs must be a positive integer, got 0"),
    (edit("epochs", 2.5), ".epochs must be a positive integer, got 2.5"),
    (edit("epochs", True), ".epochs must be a positive integer, got True"),
    (edit("seed", "one"), ".seed must be an integer, got 'one'"),
    (edit("seed", 1.5), ".seed must be an integer, got 1.5"),
    (edit("seed", False), ".seed must be an integer, got False"),
    (edit("dtype", "float16"), ".dtype must be one of float32, float64, bfloat16, got 'float16'"),
    (edit("matmul_precision", "low"), ".matmul_precision must be one of highest, high, medium, got 'low'"),
    (edit("initial_eval", "yes"), ".initial_eval must be true or false, got 'yes'"),
    (edit("cuda_graphs", 1), ".cuda_graphs must be true or false, got 1"),
    (edit("optimizer", ["sgd"]), ".optimizer must be a mapping, got list"),
    (edit("optimizer.name", "rmsprop"), ".optimizer.name must be one of sgd, adam, flip, got 'rmsprop'"),
    (edit("optimizer.lrs", delete=True), ".optimizer is missing lrs"),
    (edit("optimizer.lrs", None), ".optimizer.lrs must be a non-empty list of numbers, got None"),
    (edit("optimizer.lrs", 0.1), ".optimizer.lrs must be a non-empty list of numbers, got 0.1"),
    (edit("optimizer.lrs", []), ".optimizer.lrs must be a non-empty list of numbers, got []"),
    (edit("optimizer.lrs", [0.1, "fast"]), ".optimizer.lrs[1] must be a number, got 'fast'"),
    (edit("optimizer.wds", [0.0, "none"]), ".optimizer.wds[1] must be a number, got 'none'"),
    (edit("optimizer.wds", [0.0]), ".optimizer.wds has 1 entries but lrs has 2"),
    (edit("optimizer.momentum", "heavy"), ".optimizer.momentum must be a number, got 'heavy'"),
    (edit("optimizer.gammas", [1e-3, 1e-3]), ".optimizer has unknown field(s) gammas; known: name, lrs, wds, momentum"),
    (edit("optimizer", {**FLIP, "lrs_alpha": [0.1, "x"]}), ".optimizer.lrs_alpha[1] must be a number, got 'x'"),
    (edit("optimizer", {**FLIP, "lrs_alpha": [0.1]}), ".optimizer.lrs_alpha has 1 entries but lrs has 2"),
    (edit("optimizer", {**FLIP, "gammas": None}), ".optimizer.gammas must be a non-empty list of numbers, got None"),
    (edit("optimizer", {**FLIP, "thresholds": [1e-6]}), ".optimizer.thresholds has 1 entries but lrs has 2"),
    (edit("optimizer", {**FLIP, "momentum": 0.9}),
     ".optimizer has unknown field(s) momentum; known: name, lrs, gammas, thresholds, lrs_alpha"),
    (edit("schedule", {"name": "cosine"}), ".schedule is missing T_max"),
    (edit("schedule", {"name": "step", "T_max": 3}), ".schedule.name must be one of cosine, multistep, got 'step'"),
    (edit("schedule", {"name": "cosine", "T_max": 0}), ".schedule.T_max must be a positive integer, got 0"),
    (edit("schedule", {"name": "cosine", "T_max": 2.5}), ".schedule.T_max must be a positive integer, got 2.5"),
    (edit("schedule", {"name": "cosine", "T_max": 3, "eta_min": "0"}),
     ".schedule.eta_min must be a number, got '0'"),
    (edit("schedule", {"name": "multistep", "milestones": 60}),
     ".schedule.milestones must be a non-empty list of epochs, got 60"),
    (edit("schedule", {"name": "multistep", "milestones": []}),
     ".schedule.milestones must be a non-empty list of epochs, got []"),
    (edit("schedule", {"name": "multistep", "milestones": [60, 0]}),
     ".schedule.milestones[1] must be a positive integer, got 0"),
    (edit("schedule", {"name": "multistep", "milestones": [60.5]}),
     ".schedule.milestones[0] must be a positive integer, got 60.5"),
    (edit("schedule", {"name": "multistep", "milestones": [60], "gamma": 0}),
     ".schedule.gamma must be a positive number, got 0"),
    (edit("schedule", {"name": "multistep", "milestones": [60], "T_max": 3}),
     ".schedule has unknown field(s) T_max; known: name, milestones, gamma"),
    (edit("data.batch_size", 0), ".data.batch_size must be a positive integer, got 0"),
    (edit("data.test_batch_size", 0), ".data.test_batch_size must be a positive integer, got 0"),
    (edit("data.test_batch_size", 50.5), ".data.test_batch_size must be a positive integer, got 50.5"),
    (edit("data.augment", "no"), ".data.augment must be true or false, got 'no'"),
    (edit("data.normalize", 1), ".data.normalize must be true or false, got 1"),
    (edit("data.shuffle", "always"), ".data.shuffle must be one of epoch, once, none, got 'always'"),
    (edit("data.embeddings", " "), ".data.embeddings must be the path of a word2vec file (a string), got ' '"),
]


@pytest.mark.parametrize("d, msg", BAD, ids=[m.split()[0] if m.startswith(".") else "config" for _, m in BAD])
def test_a_malformed_config_gets_one_line_naming_the_file_and_field(tmp_path, d, msg):
    path = write(tmp_path, d)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value) == f"{path}{msg}"


def test_a_missing_file_is_named(tmp_path):
    for where in (tmp_path / "nowhere.yaml", tmp_path):  # a folder is no config file either
        with pytest.raises(ConfigError) as e:
            load_config(where)
        assert str(e.value) == f"config file {where} does not exist"


@pytest.mark.parametrize("text, why", [
    (b"model: [unclosed\n", "while parsing a flow sequence"),
    (b"epochs: !!int ten\n", "invalid literal for int() with base 10: 'ten'"),  # PyYAML raises ValueError here
    (b"model: \xff\n", "'utf-8' codec can't decode byte 0xff in position 7: invalid start byte"),
], ids=["syntax", "a tag that cannot read its value", "not UTF-8"])
def test_an_unparsable_file_is_one_line(tmp_path, text, why):
    """The file, then the first line of the parser's own message (what it found wrong, not where)."""
    p = tmp_path / "bad.yaml"
    p.write_bytes(text)
    with pytest.raises(ConfigError) as e:
        load_config(p)
    assert str(e.value) == f"config file {p} is not valid YAML: {why}"


def test_omitted_fields_take_their_documented_defaults(tmp_path):
    cfg = load_config(write(tmp_path, BASE))
    assert (cfg.seed, cfg.dtype, cfg.device, cfg.matmul_precision, cfg.cuda_graphs, cfg.initial_eval, cfg.extra) == \
        (0, "float32", "cpu", "highest", False, False, {})
    assert (cfg.optimizer.wds, cfg.optimizer.momentum, cfg.schedule) == (None, 0.0, None)
    assert (cfg.data.test_batch_size, cfg.data.augment, cfg.data.normalize, cfg.data.shuffle) == \
        (200, False, True, "epoch")
    assert load_config(write(tmp_path, edit("schedule", {"name": "multistep", "milestones": [2]}))).schedule == \
        ScheduleConfig("multistep", milestones=[2], gamma=0.1)  # PEPITA's ×0.1
    assert load_config(write(tmp_path, edit("schedule", {"name": "cosine", "T_max": 3}))).schedule == \
        ScheduleConfig("cosine", T_max=3, eta_min=0.0)


def test_model_and_rule_keep_their_own_fields_and_extra_is_carried(tmp_path):
    d = {**BASE, "model": {**BASE["model"], "act": "my_hard_sig"}, "extra": {"note": "first try"}}
    cfg = load_config(write(tmp_path, d))
    assert cfg.model == d["model"] and cfg.rule == BASE["rule"] and cfg.extra == {"note": "first try"}


@pytest.mark.parametrize("over", [
    {},
    {"optimizer": {"name": "sgd", "lrs": [0.2, 0.1], "wds": [0.0, 1e-4], "momentum": 0.9}},
    {"optimizer": {**FLIP, "lrs_alpha": [1e-2, 1e-2]}},
    {"schedule": {"name": "cosine", "T_max": 3, "eta_min": 1e-5}},
    {"schedule": {"name": "multistep", "milestones": [1, 2], "gamma": 0.5}},
    {"seed": 7, "dtype": "float64", "initial_eval": True, "cuda_graphs": True, "extra": {"note": "x"},
     "data": {"name": "digits", "batch_size": 8, "test_batch_size": 16, "shuffle": "once"}},
], ids=["minimal", "sgd-all", "flip", "cosine", "multistep", "run-fields"])
def test_the_run_folders_config_yaml_reads_back_to_the_same_config(tmp_path, over):
    """Trainer.resume rebuilds the run from config.yaml = yaml.safe_dump(cfg.to_dict())."""
    cfg = load_config(write(tmp_path, {**BASE, **over}))
    assert load_config(write(tmp_path, cfg.to_dict())) == cfg
    for key, value in over.get("schedule", {}).items():  # the schedule's own fields only, none of the other kind's
        assert cfg.to_dict()["schedule"][key] == value
    assert len(cfg.to_dict().get("schedule") or {}) == len(over.get("schedule", {}))


@pytest.mark.parametrize("device, expected", [("cpu", False), ("cuda:0", True), ("cuda:1", False)])
def test_tf32_is_reported_for_ampere_or_newer_gpus_only(monkeypatch, device, expected):
    """A box with an A100 (8.0) as cuda:0 and a T4 (7.5) as cuda:1: "high" matmul precision means TF32 on the
    first only, so the GDU error a user sees per precision is the one of the device the run uses."""
    capability = {0: (8, 0), 1: (7, 5)}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda dev=None: capability[torch.device(dev).index])
    assert has_tf32(device) is expected


def test_every_missing_and_every_unknown_field_is_named(tmp_path):
    d = {k: v for k, v in BASE.items() if k not in ("epochs", "model")}
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, d))
    assert str(e.value).endswith(" is missing model, epochs")
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, {**BASE, "colour": 1, "size": 2}))
    assert str(e.value).endswith(f" has unknown field(s) colour, size; known: {KNOWN}")


def test_sections_read_on_their_own_name_themselves_in_errors():
    """RunConfig / DataConfig / ScheduleConfig.from_dict without ``where`` (a library user's call): the error
    names the section."""
    with pytest.raises(ConfigError) as e:
        RunConfig.from_dict({**BASE, "epochs": 0})
    assert str(e.value) == "config.epochs must be a positive integer, got 0"
    with pytest.raises(ConfigError) as e:
        DataConfig.from_dict({"name": "digits"})
    assert str(e.value) == "data is missing batch_size"
    with pytest.raises(ConfigError) as e:
        ScheduleConfig.from_dict({"name": "multistep"})
    assert str(e.value) == "schedule is missing milestones"


def test_a_config_reads_as_utf8_whatever_the_locale(tmp_path, ascii_locale):
    p = tmp_path / "run.yaml"
    p.write_text(yaml.safe_dump({**BASE, "extra": {"note": "β ≥ 0.1, ± one seed"}}, allow_unicode=True),
                 encoding="utf-8")
    assert load_config(p).extra == {"note": "β ≥ 0.1, ± one seed"}
