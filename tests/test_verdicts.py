"""Verdicts, intervals, identities, links and cards over hand-made run tables: no training, no
store.

The runs are rows of the frame `selection.load_runs` returns, written out directly, so each case
(reproduced, not reproduced, inconclusive, one run, not run, other data, mixed identities) is
exactly the one under test.
"""

import json
import math

import numpy as np
import pandas as pd
import pytest

from benchmarks import runkey, selection
from benchmarks.registry import Entry, Paper, RegistryError, arch, get
from benchmarks.report import build, figures, render, verdicts
from benchmarks.report.table import CURVE_KEYS, Report
from benchmarks.runkey import RunKey
from resnet.config import TrainConfig

CIFAR = "cifar10"
UI = "http://mlflow.example:5000"
H100 = {
    "device": "NVIDIA H100 80GB HBM3",
    "gpu_count": "1",
    "gpu_driver": "550.54.15",
    "cuda": "12.4",
    "cudnn": "9.1.0",
    "cpu": "AMD EPYC 9654",
    "platform": "Linux-5.15",
    "python": "3.11.7",
    "torch": "2.14.1+cu124",
    "torchvision": "0.29.1",
    "mlflow": "3.17.2",
}


def tiny(name: str, version: int = 1, **paper) -> Entry:
    return Entry(
        f"tiny/{name}",
        f"tiny entry {name}",
        arch(layers=2, blocks=(1, 1), channels=(8, 16)),
        TrainConfig(epochs=1),
        Paper(**paper),
        version,
    )


def fake_runs(*specs) -> pd.DataFrame:
    """Rows as load_runs returns them; each spec is (entry, seed, accuracy) plus overrides as a
    dict."""
    rows = []
    for i, (entry, seed, acc, *extra) in enumerate(specs):
        over = extra[0] if extra else {}
        checksum = over.pop("checksum", "c0ffee")
        version = over.pop("version", entry.version)
        config = entry.config_hash()
        row = {
            "run_id": f"run{i:02d}" + "0" * 26,
            "run_name": f"{entry.name} seed={seed}",
            "status": "FINISHED",
            "experiment_id": "7",
            "start_time": pd.Timestamp("2026-01-01") + pd.Timedelta(minutes=i),
            "entry": entry.name,
            "kind": "train",
            "seed": seed,
            "config_hash": config,
            "overrides": "",
            "data": CIFAR,
            "limit_train": 0,
            "limit_test": 0,
            "diverged": False,
            "collapsed": False,
            "shape": "took-off",
            "failure": "",
            "acc": acc,
            "best": acc + 0.5 if acc is not None else None,
            "loss": 0.4,
            "loss_batchmean": 0.41,
            "wall": 1800.0,
            "entry_version": version,
            "data_checksum": checksum,
            "git_commit": "abc1234def",
            "git_dirty": "False",
            **H100,
            "pipeline": "fast",
            "precision": "fp32",
            "compile": "False",
            "compile_mode": "auto",
            "channels_last": "True",
            "deterministic": "False",
            "train_images": "50000",
            "test_images": "10000",
        }
        row.update(over)
        # the key, read back from what the run recorded, as load_runs reads it
        row["key"] = runkey.from_record({f"param_{k}": row[k] for k in MODE_PARAMS} | row)
        row["identity"] = row["key"].identity
        rows.append(row)
    return pd.DataFrame(rows)


MODE_PARAMS = ("pipeline", "precision", "compile", "compile_mode")


def make_report(runs, entries, source=CIFAR, variant=selection.Variant(), **kw) -> Report:
    mode = selection.resolve_mode(runs, entries, variant, source, kw.get("mode"))
    rows, other = build.tabulate(
        runs, variant, source, entries, kw.get("ui_url"), rank=kw.get("rank", False), mode=mode
    )
    curves = pd.DataFrame(columns=["entry", "run_id", "epoch", *CURVE_KEYS])
    return Report(
        "exp",
        "sqlite:///x.db",
        source,
        variant,
        rows,
        other,
        curves,
        ranked=kw.get("rank", False),
        ui_url=kw.get("ui_url"),
        mode=mode,
    )


# ---------------------------------------------------------------------------------------- intervals


def _t_cdf(q: float, df: int) -> float:
    x = np.linspace(0.0, q, 200_001)
    c = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    return 0.5 + np.trapezoid(c * (1 + x**2 / df) ** (-(df + 1) / 2), x)


def test_t_quantiles_are_the_95th_percentile():
    # TOST at alpha = 0.05: each one-sided test at 5%, so the two-sided 90% interval's t(0.95, df)
    assert (0.05, pytest.approx(0.90), "90%") == (verdicts.ALPHA, verdicts.LEVEL, verdicts.PERCENT)
    for df in (1, 2, 3, 4, 9, 29, 30, 35, 120, 1000):
        assert _t_cdf(verdicts.t_quantile(df), df) == pytest.approx(0.95, abs=2e-5), df
    # the printed tables' values
    assert [round(verdicts.t_quantile(df), 4) for df in (1, 2, 10, 30)] == [
        6.3138,
        2.92,
        1.8125,
        1.6973,
    ]
    assert verdicts.t_quantile(10_000) == pytest.approx(1.645, abs=1e-3)
    with pytest.raises(ValueError):
        verdicts.t_quantile(0)


def test_interval_against_a_hand_computed_case():
    iv = verdicts.interval([90.0, 91.0, 92.0])
    # mean 91, s = 1, t(0.95, 2) = 2.919986: half-width 2.919986 / sqrt(3) = 1.685854
    assert (iv.n, iv.mean, iv.std) == (3, 91.0, 1.0)
    assert iv.low == pytest.approx(89.314146, abs=1e-5) and iv.high == pytest.approx(
        92.685854, abs=1e-5
    )
    assert iv.text() == "91.00 ± 1.69 (n=3)"
    one = verdicts.interval([90.5, float("nan")])
    assert one.n == 1 and one.low is None and one.text() == "90.50 (one run)"
    assert verdicts.interval([]).text() == "—"


# ----------------------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize(
    "accs,code,text",
    [
        ([91.5, 91.8, 92.0], "reproduced", "reproduced"),  # [91.14, 92.39] inside [90.78, 92.78]
        ([85.0, 85.2, 85.1], "not reproduced", "not reproduced (below)"),
        ([95.0, 95.1, 95.2], "not reproduced", "not reproduced (above)"),
        ([90.0, 92.0, 91.0], "inconclusive", "inconclusive"),  # [89.31, 92.69] straddles 90.78
        ([91.78], "inconclusive", "inconclusive (one run)"),
        ([], "not run", "not run"),
    ],
)
def test_accuracy_verdicts(accs, code, text):
    v = verdicts.accuracy_verdict(verdicts.interval(accs), 91.78, 1.0, CIFAR)
    assert (v.code, v.text) == (code, text)


def test_other_data_and_other_configurations_are_never_reproduced():
    within = verdicts.interval([91.5, 91.8, 92.0])
    v = verdicts.accuracy_verdict(within, 91.78, 1.0, "cifar10-jpeg-rebuild")
    assert v.code == "other data" and v.text == "other data: cifar10-jpeg-rebuild"
    assert (
        "not the paper's CIFAR-10" in v.why
        and "final-epoch test accuracy lies within the paper's 91.78 ± 1" in v.why
    )
    v = verdicts.accuracy_verdict(within, 91.78, 1.0, CIFAR, "epochs=1")
    assert v.code == "other configuration" and "epochs=1" in v.text
    assert verdicts.accuracy_verdict(within, None, 1.0, CIFAR).code == "no claim"


def test_a_wider_tolerance_can_turn_a_verdict():
    accs = verdicts.interval([89.0, 89.2, 89.1])  # below 91.78 ± 1, within 91.78 ± 3
    assert verdicts.accuracy_verdict(accs, 91.78, 1.0, CIFAR).code == "not reproduced"
    assert verdicts.accuracy_verdict(accs, 91.78, 3.0, CIFAR).code == "reproduced"


A, B, C, D = (
    tiny("a", num=1, accuracy=50.0, params="7,666"),
    tiny("b", num=2, accuracy=60.0, params="1.0M"),
    tiny("c", num=3, accuracy=70.0),
    tiny("d", accuracy=80.0),
)
E = tiny("e")  # no paper figure


def test_rows_summary_and_parameter_verdicts():
    runs = fake_runs(
        (A, 0, 50.1),
        (A, 1, 49.9),
        (A, 2, 50.0),
        (B, 0, 40.0),
        (B, 1, 41.0),
        (B, 2, 40.5),
        (C, 0, 70.2),
        (E, 0, 33.0),
    )
    r = make_report(runs, [A, B, C, D, E])
    t = r.table.set_index("entry")
    assert list(t["verdict"]) == [
        "reproduced",
        "not reproduced",
        "inconclusive",
        "not run",
        "no claim",
    ]
    first = r.rows[0]  # a row keeps its runs, interval and verdict as values
    assert first.run_ids == tuple(runs["run_id"][:3]) and first.seeds == (0, 1, 2)
    assert (
        first.interval == first.final == verdicts.interval([50.1, 49.9, 50.0])
        and first.verdict.code == "reproduced"
    )
    assert first.best == verdicts.interval([50.6, 50.4, 50.5]) and first.verdict.metric == "final"
    assert list(t["params_verdict"]) == [
        "matches",
        "differs",
        "not printed",
        "not printed",
        "not printed",
    ]
    assert t.loc[A.name, "final_ci_low"] < 50.0 < t.loc[A.name, "final_ci_high"]
    assert (
        t.loc[A.name, "best_ci_low"] < 50.5 < t.loc[A.name, "best_ci_high"]
        and t.loc[A.name, "ci_level"] == 0.9
    )
    assert r.summary() == (
        "1 of 4 rows reproduced on CIFAR-10, 1 not reproduced, 1 inconclusive, 1 not run. "
        "Parameter counts: 1 of 2 match the paper's print; tiny/b differs."
    )
    assert t.loc[A.name, "mflops"] > 0 and bool(t.loc[A.name, "fits_5m"])
    assert t.loc[A.name, "gpu_hours"] == pytest.approx(1.5)  # three 30-minute runs on a GPU


def test_other_data_summary_names_the_data():
    runs = fake_runs(*[(A, s, 50.0 + s / 10, {"data": "cifar10-jpeg-rebuild"}) for s in range(3)])
    r = make_report(runs, [A, B], source="cifar10-jpeg-rebuild")
    assert list(r.table["verdict"]) == ["other data", "not run"]
    assert r.summary().startswith(
        "No row can count as reproduced: the runs are on cifar10-jpeg-rebuild, not the "
        "paper's CIFAR-10 (1 of 2 rows with a paper figure ran on it)"
    )


def test_a_row_never_mixes_identities():
    bumped = tiny("a", version=2, num=1, accuracy=50.0)
    # the latest data
    runs = fake_runs(
        (A, 0, 50.0),
        (A, 1, 50.2),  # before the bump
        (bumped, 0, 49.0, {"checksum": "old"}),
        (bumped, 1, 49.1, {"checksum": "old"}),  # older data
        (bumped, 0, 51.0, {"checksum": "new"}),
    )
    r = make_report(runs, [bumped])
    row = r.table.iloc[0]
    assert row["n"] == 1 and row["final_mean"] == 51.0 and row["data_checksum"] == "new"
    assert row["identity"] == RunKey.of(bumped, bumped.train, CIFAR, "new").identity
    assert "2 runs of another identity (data checksum) not counted" in row["notes"]
    why = r.other.set_index("run_id")["why"]
    assert (
        list(why) == ["entry version 1 (now 2)"] * 2 + ["another identity (data checksum old)"] * 2
    )


def test_rank_sorts_by_measured_accuracy_and_groups_select_entries():
    runs = fake_runs((A, 0, 50.0), (B, 0, 70.0), (C, 0, 60.0))
    t = make_report(runs, [A, B, C, D], rank=True).table
    assert list(t["entry"]) == [B.name, C.name, A.name, D.name]
    assert list(t["rank"].astype(object).where(t["rank"].notna(), None)) == [1, 2, 3, None]
    assert {e.group for e in build.group_entries("table1")} == {"table1"} and len(
        build.group_entries("table1")
    ) == 8  # rows 1-7, row 5 both ways
    with pytest.raises(RegistryError, match="no entries in group 'nope'"):
        build.group_entries("nope")


# ------------------------------------------------------------------------------------------- output


def _published():
    runs = fake_runs((A, 0, 50.1), (A, 1, 49.9), (A, 2, 50.0), (B, 0, 41.0, {"git_dirty": "True"}))
    return runs, make_report(runs, [A, B, C], ui_url=UI)


def test_html_shows_verdicts_links_and_cards():
    runs, r = _published()
    page = render.render(r, "html")
    first = runs["run_id"][0]
    assert f'href="{UI}/#/experiments/7/runs/{first}"' in page
    assert '<td class="reproduced l">reproduced</td>' in page and "inconclusive (one run)" in page
    assert '<a href="#card-tiny-a">tiny/a</a>' in page and 'id="card-tiny-a"' in page
    assert "1 of 3 rows reproduced on CIFAR-10, 1 inconclusive, 1 not run" in page
    for fact in (
        "NVIDIA H100 80GB HBM3",
        "driver 550.54.15",
        "CUDA 12.4",
        "cuDNN 9.1.0",
        "torchvision 0.29.1",
        "MLflow 3.17.2",
        "git abc1234def",
        "checksum c0ffee",
        "t(0.95, 2) = 2.92",
        "1.50 GPU-hours",
        "CosineAnnealingLR(T_max=200)",
        "the paper reports one run",
        "Deviations from the paper",
        "with uncommitted",
    ):
        assert fact in page, fact
    md = render.render(r, "markdown")
    assert f"[{first[:8]}]({UI}/#/experiments/7/runs/{first})" in md
    assert "### tiny/a: reproduced on final-epoch test accuracy — 3 runs" in md


def test_json_and_csv_carry_what_traces_a_cell_to_its_runs():
    runs, r = _published()
    data = json.loads(render.render(r, "json"))
    row = data["rows"][0]
    assert row["run_ids"].split(",") == list(runs["run_id"][:3]) and row["verdict"] == "reproduced"
    assert (row["config_hash"], row["git_commit"], row["git_dirty"], row["data_checksum"]) == (
        A.config_hash(),
        "abc1234def",
        False,
        "c0ffee",
    )
    assert data["rows"][1]["git_dirty"] is True
    assert (
        data["cards"]["tiny/a"]["Hardware"].startswith("GPU NVIDIA H100")
        and data["verdict_rule"] == verdicts.RULE
    )
    csv = render.render(r, "csv").splitlines()[0].split(",")
    assert {
        "run_ids",
        "run_urls",
        "config_hash",
        "identity",
        "git_commit",
        "git_dirty",
        "data_checksum",
        "verdict",
        "verdict_metric",
        "ci_level",
        "final_ci_low",
        "final_ci_high",
        "best_ci_low",
        "best_ci_high",
        "mflops",
        "fits_5m",
        "collapsed",
        "test_loss_batchmean",
        "paper_test_loss",
    } <= set(csv)


def test_adam_sgd_and_long_run_figures(tmp_path):
    final, sgd, long = get("paper/final"), get("paper/sgd"), get("paper/epochs120")
    runs = fake_runs((final, 0, 90.0), (sgd, 0, 75.0), (long, 0, 89.0))
    r = make_report(runs, [final, sgd, long])
    epochs = np.arange(120)
    r.curves = pd.concat(
        [
            pd.DataFrame(
                {
                    "entry": e.name,
                    "run_id": rid,
                    "epoch": epochs[:n],
                    "test_loss": 0.5,
                    "train_loss": 1 / (1 + epochs[:n]),
                    "train_acc": 50 + epochs[:n] / 3,
                    "test_acc": 80.0,
                }
            )
            for e, rid, n in zip((final, sgd, long), runs["run_id"], (80, 80, 120), strict=False)
        ]
    )
    figs = figures.figures_for(r, tmp_path)
    assert {p.name for p in figs.values()} == {
        figures.FIG_PANELS,
        figures.FIG_FINAL,
        figures.FIG_OPTIMIZERS,
        figures.FIG_LONG,
    }
    assert all(p.stat().st_size > 10_000 for p in figs.values())
    page = render.render(r, "html", figs)
    assert page.count('src="data:image/png;base64,') == 4 and "Adam against SGD" in page


def test_a_later_limited_run_does_not_become_the_rows_run():
    """Three full runs, then a `--limit-train 1000` smoke run of seed 0: the row counts the
    three."""
    runs = fake_runs(
        (A, 0, 50.0),
        (A, 1, 50.2),
        (A, 2, 49.8),
        (A, 0, 20.0, {"limit_train": 1000, "overrides": "limit_train=1000"}),
    )
    r = make_report(runs, [A])
    row = r.table.iloc[0]
    assert row["n"] == 3 and row["run_ids"].split(",") == list(runs["run_id"][:3])
    assert r.other.set_index("run_id").loc[runs["run_id"][3], "why"] == "other configuration"


def test_a_row_counts_one_mode():
    """Seeds in fp32 and a later bf16 run of seed 0: the row counts the fp32 ones, the mode with
    the most finished runs, and names the bf16 one apart."""
    runs = fake_runs((A, 0, 50.0), (A, 1, 50.2), (A, 0, 48.0, {"precision": "bf16"}))
    r = make_report(runs, [A])
    row = r.table.iloc[0]
    assert row["n"] == 2 and row["mode"] == "fp32, fast pipeline, not compiled"
    assert list(r.other["why"]) == ["other mode (bf16, fast pipeline, not compiled)"]
