"""``eqbench run`` without training: the metric read from a run, what it is compared with, the verdict, the seeds'
configs and folders, reuse and resume of seeds, and run.json (the launcher's end-to-end runs are in test_launch)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from eqbench import runner
from eqbench.errors import ConfigError
from eqbench.registry import get_baseline

CI = "dellaferrera2022/mnist5k/fc1024-bp"  # a ci config with its band
PAPER = "dellaferrera2022/cifar10/fc1024-pepita-notebook"  # a published value with a tolerance, on cuda
COST = "gammell2021/diabetes/5layer-mlff"  # a published cost without tolerance or std
NONE = "ernoult2019/mnist/eb-1h-ep"  # no reproduction config


@pytest.mark.parametrize("final, metric, unit, expected", [
    ({"test_acc": 97.5}, "test_accuracy", "percent", 97.5),
    ({"test_acc": 97.5}, "test_error", "percent", 2.5),
    ({"test_acc": 97.5}, "test_accuracy", "ratio", 0.975),
    ({"train_acc": 90.0}, "train_error", "ratio", 0.1),
    ({"test_cost": 0.044}, "test_error", "cost", 0.044),
    ({"train_cost": 0.03}, "train_error", "cost", 0.03),
])
def test_the_metric_is_read_from_the_final_epoch_in_the_baselines_unit(final, metric, unit, expected):
    assert runner.to_metric(final, metric, unit) == pytest.approx(expected, rel=1e-12)


def test_the_metrics_unit_is_percent_unless_said():
    assert runner.to_metric({"test_acc": 97.5}, "test_error") == pytest.approx(2.5, rel=1e-12)


@pytest.mark.parametrize("final, metric, unit, message", [
    ({"test_acc": 1.0}, "val_accuracy", "percent", "cannot measure metric 'val_accuracy' from a training run "
                                                     "(test_accuracy, test_error, train_accuracy, train_error)"),
    ({"test_acc": 1.0}, "test_loss", "percent", "cannot measure metric 'test_loss' from a training run "
                                                "(test_accuracy, test_error, train_accuracy, train_error)"),
    ({"test_cost": 0.1}, "test_accuracy", "cost", "a regression run measures a cost, not 'test_accuracy' in 'cost'"),
    ({"test_cost": 0.1}, "test_error", "percent", "a regression run measures a cost, not 'test_error' in 'percent'"),
    ({"test_acc": 1.0}, "test_error", "cost", "a classification run measures a rate in percent or ratio, not in "
                                              "'cost'"),
])
def test_a_metric_the_run_cannot_give_is_one_line(final, metric, unit, message):
    with pytest.raises(ConfigError) as e:
        runner.to_metric(final, metric, unit)
    assert str(e.value) == message


def test_ci_compares_with_eqbenchs_band_and_paper_with_the_published_value():
    metric, ci = runner.expected_for(get_baseline(CI), "ci")
    band = get_baseline(CI).scales["ci"].band
    assert metric == band.metric and ci == {"band": [band.low, band.high], "seeds": band.seeds,
                                            "source": band.measured, "note": band.note, "measured_by": "eqbench"}
    b = get_baseline(PAPER)
    metric, paper = runner.expected_for(b, "paper")
    assert metric == b.metric and paper == {"value": 52.58, "std": None, "tolerance": 1.5,
                                            "provenance": b.provenance, "source": b.source}


@pytest.mark.parametrize("mean, expected, verdict", [
    (5.0, {"band": [4.0, 6.0]}, True), (4.0, {"band": [4.0, 6.0]}, True), (6.0, {"band": [4.0, 6.0]}, True),
    (6.01, {"band": [4.0, 6.0]}, False), (3.99, {"band": [4.0, 6.0]}, False),
    (51.1, {"value": 52.58, "tolerance": 1.5, "std": None}, True),
    (51.0, {"value": 52.58, "tolerance": 1.5, "std": None}, False),
    (54.0, {"value": 52.58, "tolerance": 1.5, "std": None}, True),
    (54.1, {"value": 52.58, "tolerance": 1.5, "std": None}, False),
    (10.9, {"value": 10.0, "tolerance": None, "std": 0.5}, True),  # no tolerance: twice the published std
    (11.1, {"value": 10.0, "tolerance": None, "std": 0.5}, False),
    (10.5, {"value": 10.0, "tolerance": 0.5, "std": None}, True),  # the tolerance's edge is inside
    (10.5, {"value": 10.0, "tolerance": None, "std": 0.25}, True),
    (10.0, {"value": 10.0, "tolerance": None, "std": None}, None),  # nothing to judge with
    (10.0, {"value": None, "tolerance": 1.0, "std": None}, None),  # no published number
])
def test_the_verdict(mean, expected, verdict):
    assert runner.verdict(mean, expected) is verdict


def test_seed_configs_count_from_the_configs_seed_or_take_the_seeds_given(monkeypatch):
    base = get_baseline(CI).scales["ci"].config
    cfgs = runner.seed_configs(CI, "ci", 3)
    assert [c.seed for c in cfgs] == [base.seed, base.seed + 1, base.seed + 2]
    assert all(c.device == base.device and c.model == base.model for c in cfgs)
    assert [c.seed for c in runner.seed_configs(CI, "ci", [7, 3])] == [7, 3]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert runner.seed_configs(CI, "ci", 1, device="cuda:1")[0].device == "cuda:1"
    assert runner.seed_configs(PAPER, "paper", 1)[0].device == "cuda"


@pytest.mark.parametrize("bid, scale, seeds, device, message", [
    (NONE, "ci", 1, None, f"baseline {NONE} has no 'ci' reproduction config (scales: none)"),
    (PAPER, "ci", 1, None, f"baseline {PAPER} has no 'ci' reproduction config (scales: paper)"),
    (CI, "ci", 0, None, "--seeds must be at least 1, got 0"),
    (PAPER, "paper", 1, None, f"{PAPER} at the paper scale runs on cuda, but no CUDA device is available; pass "
                              "--device cpu to run it on the CPU"),
    (CI, "ci", 1, "cuda:0", f"{CI} at the ci scale runs on cuda:0, but no CUDA device is available; pass "
                            "--device cpu to run it on the CPU"),
])
def test_seed_configs_refuse_in_one_line(monkeypatch, bid, scale, seeds, device, message):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError) as e:
        runner.seed_configs(bid, scale, seeds, device)
    assert str(e.value) == message


def test_a_ci_config_without_a_band_is_refused(monkeypatch):
    b = get_baseline(CI)
    monkeypatch.setattr(b.scales["ci"], "band", None)
    monkeypatch.setattr("eqbench.runner.get_baseline", lambda bid: b)
    with pytest.raises(ConfigError, match=rf"^baseline {CI} has a ci config but no band to compare with$"):
        runner.seed_configs(CI, "ci", 1)


def test_each_seed_has_its_folder(tmp_path):
    assert runner.seed_folder(tmp_path, "a/b/c", "ci", 4) == tmp_path / "a__b__c" / "ci" / "seed4"


class FakeTrainer:
    """Stands in for eqbench.train.Trainer: records what was asked and writes result.json like fit() does."""

    calls: list = []

    def __init__(self, cfg, folder, **kw):
        self.cfg, self.folder = cfg, folder
        FakeTrainer.calls.append(("new", folder.name, cfg.seed, kw))

    @classmethod
    def resume(cls, folder, **kw):
        FakeTrainer.calls.append(("resume", folder.name, None, kw))
        t = cls.__new__(cls)
        t.cfg, t.folder = None, folder
        return t

    def fit(self):
        seed = int(self.folder.name[len("seed"):])
        result = {"final": {"test_acc": 90.0 + seed}, "mean_epoch_s": 2.0 * (seed + 1)}
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "result.json").write_text(json.dumps(result))
        return result


def test_run_baseline_trains_new_seeds_resumes_interrupted_ones_reuses_finished_ones(tmp_path, monkeypatch):
    monkeypatch.setattr("eqbench.runner.Trainer", FakeTrainer)
    FakeTrainer.calls = []
    base_seed = get_baseline(CI).scales["ci"].config.seed
    done = runner.seed_folder(tmp_path, CI, "ci", base_seed)
    done.mkdir(parents=True)
    (done / "result.json").write_text(json.dumps({"final": {"test_acc": 95.0}, "mean_epoch_s": 1.0}))
    interrupted = runner.seed_folder(tmp_path, CI, "ci", base_seed + 1)
    interrupted.mkdir(parents=True)
    (interrupted / "config.yaml").write_text("{}")
    out = runner.run_baseline(CI, "ci", seeds=3, results=str(tmp_path), data_dir="/data", progress=False)
    kw = {"data_dir": "/data", "download": False, "progress": False}
    assert FakeTrainer.calls == [("resume", f"seed{base_seed + 1}", None, kw), ("new", f"seed{base_seed + 2}",
                                                                                  base_seed + 2, kw)]
    per_seed = [95.0, 91.0 + base_seed, 92.0 + base_seed]
    band = get_baseline(CI).scales["ci"].band
    assert out["measured"]["per_seed"] == per_seed and out["measured"]["seeds"] == [base_seed + k for k in range(3)]
    assert out["measured"]["mean"] == pytest.approx(sum(per_seed) / 3)
    std = math.sqrt(sum((v - sum(per_seed) / 3) ** 2 for v in per_seed) / 2)  # the sample std (n − 1)
    assert out["measured"]["std"] == pytest.approx(std)
    assert out["measured"]["mean_epoch_s"] == pytest.approx((1.0 + 2.0 * (base_seed + 2) + 2.0 * (base_seed + 3)) / 3)
    assert out["measured"]["epochs"] == get_baseline(CI).scales["ci"].config.epochs
    assert (out["id"], out["scale"], out["metric"], out["unit"]) == (CI, "ci", band.metric, "percent")
    assert out["pass"] is (band.low <= out["measured"]["mean"] <= band.high)
    assert json.loads((tmp_path / CI.replace("/", "__") / "ci" / "run.json").read_text()) == out
    assert out["expected"] == runner.expected_for(get_baseline(CI), "ci")[1]
    one = runner.summarize(CI, "ci", [base_seed], tmp_path)
    assert one["measured"]["std"] == 0.0 and one["measured"]["per_seed"] == [95.0]
    two = runner.summarize(CI, "ci", [base_seed, base_seed + 1], tmp_path)
    assert two["measured"]["std"] == pytest.approx(math.sqrt(((95.0 - 91.0 - base_seed) ** 2) / 2))


def test_run_baseline_defaults_to_one_seed_into_results_with_progress_and_no_download(tmp_path, monkeypatch):
    """``eqbench run ID`` with no options: one seed, ./results, a progress bar, nothing downloaded; ``summarize``
    reads the same folder by default."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("eqbench.runner.Trainer", FakeTrainer)
    FakeTrainer.calls = []
    seed = get_baseline(CI).scales["ci"].config.seed
    out = runner.run_baseline(CI, "ci")
    assert FakeTrainer.calls == [("new", f"seed{seed}", seed, {"data_dir": None, "download": False,
                                                                 "progress": True})]
    assert json.loads((tmp_path / "results" / CI.replace("/", "__") / "ci" / "run.json").read_text()) == out
    assert runner.summarize(CI, "ci", [seed]) == out
    FakeTrainer.calls = []
    runner.run_seed(runner.seed_configs(CI, "ci", 1)[0], tmp_path / "one" / f"seed{seed}")
    assert FakeTrainer.calls[0][3] == {"data_dir": None, "download": False, "progress": True}


def test_run_baseline_passes_the_device_and_download_on(tmp_path, monkeypatch):
    seen = []

    class Recording(FakeTrainer):
        def __init__(self, cfg, folder, **kw):
            super().__init__(cfg, folder, **kw)
            seen.append((cfg.device, kw["download"]))

    monkeypatch.setattr("eqbench.runner.Trainer", Recording)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    runner.run_baseline(CI, "ci", device="cuda:1", download=True, results=str(tmp_path))
    assert seen == [("cuda:1", True)]


def test_a_missing_scale_lists_every_scale_the_baseline_has(monkeypatch):
    b = get_baseline(CI)
    monkeypatch.setattr(b, "scales", {"ci": b.scales["ci"], "paper": b.scales["ci"]})
    monkeypatch.setattr("eqbench.runner.get_baseline", lambda bid: b)
    with pytest.raises(ConfigError) as e:
        runner.seed_configs(CI, "gpu", 1)
    assert str(e.value) == f"baseline {CI} has no 'gpu' reproduction config (scales: ci, paper)"


def test_a_regression_baseline_is_summarized_in_its_cost(tmp_path):
    """Gammell et al.'s regression runs record test_cost; the baseline's unit (cost) reads it as the error."""
    folder = runner.seed_folder(tmp_path, COST, "paper", 0)
    folder.mkdir(parents=True)
    (folder / "result.json").write_text(json.dumps({"final": {"test_cost": 0.05}, "mean_epoch_s": 1.0}))
    out = runner.summarize(COST, "paper", [0], tmp_path)
    assert (out["unit"], out["measured"]["per_seed"]) == ("cost", [0.05])
