"""Sweeps: one-at-a-time variants under the budget, registered as entries and run through the same
path."""

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from benchmarks import registry, sweep
from benchmarks.cli.main import main
from resnet.model import count_parameters
from tests.conftest import fresh_uri
from tracking import names


def differing(a, b) -> set[str]:
    return {
        f
        for f in ("layers", "blocks", "channels", "conv_kernel", "skip_kernel", "pool_kernel")
        if getattr(a, f) != getattr(b, f)
    }


def test_variants_change_one_hyperparameter_within_budget():
    base = registry.get("paper/final")
    variants = sweep.enumerate_sweep(base)
    assert variants[0] == ("base", base.model)
    names_ = [n for n, _ in variants]
    assert len(set(names_)) == len(names_) and {"N3", "B4-6-4-2", "C24-48-96-192", "P2"} <= set(
        names_
    )
    for name, cfg in variants[1:]:
        assert count_parameters(cfg) <= registry.BUDGET
        changed = differing(cfg, base.model)
        if name.startswith("N"):  # a layer more or less drags the per-layer lists along
            assert "layers" in changed and cfg.layers != base.model.layers
        else:
            assert len(changed) == 1, (name, changed)
    tight = sweep.enumerate_sweep(base, max_params=3_000_000)
    assert all(count_parameters(c) <= 3_000_000 for _, c in tight[1:]) and len(tight) < len(
        variants
    )


def test_unknown_hyperparameter():
    with pytest.raises(Exception, match="vary: unknown hyperparameter 'Q'"):
        sweep.enumerate_sweep(registry.get("paper/final"), vary=["Q"])


@pytest.fixture
def own_registry():
    with registry.temporary():  # keep the grid out of other tests
        yield


@pytest.mark.slow
def test_sweep_registers_runs_and_reports_a_small_grid(tmp_path, monkeypatch, own_registry):
    monkeypatch.chdir(tmp_path)
    uri = fresh_uri(tmp_path)
    result = CliRunner().invoke(
        main,
        [
            "sweep",
            "--base",
            "table1/row1",
            "--group",
            "grid",
            "--vary",
            "P",
            "--out",
            str(tmp_path),
            "--run",
            "--epochs",
            "1",
            "--data",
            "synthetic",
            "--limit-train",
            "64",
            "--limit-test",
            "32",
            "--device",
            "cpu",
            "--tracking-uri",
            uri,
        ],
    )
    assert result.exit_code == 0, result.output + str(result.exception)
    generated = (tmp_path / "sweep_grid.py").read_text()
    assert '@entry("grid/P2")' in generated and "TRAIN = TrainConfig(epochs=50" in generated
    grid = [e.name for e in registry.entries() if e.group == "grid"]
    assert grid == ["grid/base", "grid/P1", "grid/P2", "grid/P3"]
    client = MlflowClient(uri)
    runs = client.search_runs(
        [client.get_experiment_by_name(names.DEFAULT_EXPERIMENT).experiment_id]
    )
    assert sorted(r.data.tags[names.TAG_ENTRY] for r in runs) == sorted(grid)
    assert all(r.info.status == "FINISHED" for r in runs)
    assert "grid/P1" in (tmp_path / "results" / "report.md").read_text()
    again = CliRunner().invoke(
        main, ["sweep", "--base", "table1/row1", "--group", "grid", "--out", str(tmp_path)]
    )
    assert again.exit_code == 2 and "already has entries" in again.stderr
