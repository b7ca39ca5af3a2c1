"""Fidelity to the paper and the authors' code, on known numbers and generated histories.

- The verdict rule (TOST at alpha 0.05, the 90% t-interval) on hand-computed cases.
- Each claim judged on its own metric: runs logged through the real `train_job` with generated
  histories whose last epoch is NOT their best; Table 1 rows use the best epoch, paper/final
  the last (a job that logged the best epoch as `test_accuracy` fails here).
- The authors' test loss (per-batch means averaged over batches) against a hand count.
- Collapsed runs: tagged by `train_job` at epoch K, counted, and named in the report.
The deviation table has its own tests (tests/test_deviations.py).
"""

import json
import math
from dataclasses import asdict

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from benchmarks import collapse, registry, selection
from benchmarks.jobs import train as train_mod
from benchmarks.jobs.spec import DataSpec, JobSettings
from benchmarks.jobs.train import train_job
from benchmarks.registry import BEST, FINAL, Entry, Paper, RegistryError, arch, get
from benchmarks.report import build, cards, display, render, verdicts
from benchmarks.report.table import TableRequest
from resnet.config import ExecConfig, TrainConfig
from resnet.data import synthetic
from resnet.model import count_parameters
from resnet.network import build_model
from resnet.passes import run_pass
from resnet.train import EpochStats, TrainResult, train
from tests.conftest import fresh_uri
from tests.test_verdicts import fake_runs
from tracking import names
from tracking.runlogger import RunLogger

SPEC = DataSpec("synthetic", limit_train=64, limit_test=32)
CPU = ExecConfig(device="cpu")
PAPER = 91.78


def three(mean: float, s: float = 0.3) -> list[float]:
    """Three seeds with this mean and sample standard deviation exactly s."""
    return [mean - s, mean, mean + s]


# ----------------------------------------------------------------------------------------- the rule


def test_tost_on_known_numbers():
    # 3 seeds, s = 0.3, mean 0.36 below the paper, tolerance 1: the 90% interval is the mean
    # ± t(0.95, 2)·0.3/√3 = ± 2.919986·0.173205 = ± 0.505757, i.e. [paper − 0.866, paper + 0.146],
    # wholly inside paper ± 1: equivalent at alpha 0.05 (TOST), so reproduced.
    iv = verdicts.interval(three(PAPER - 0.36))
    assert iv.std == pytest.approx(0.3)
    assert iv.low == pytest.approx(PAPER - 0.36 - 0.505757, abs=1e-5)
    assert iv.high == pytest.approx(PAPER - 0.36 + 0.505757, abs=1e-5)
    v = verdicts.accuracy_verdict(iv, PAPER, 1.0, "cifar10", metric=BEST)
    assert v.code == verdicts.REPRODUCED and v.metric == BEST
    assert (
        "90% interval of the best-epoch test accuracy lies within" in v.why and "α = 0.05" in v.why
    )
    # The old rule's 95% interval: ± 4.302653·0.173205 = ± 0.745241 reaches paper − 1.105, past the
    # band's lower edge, so it said inconclusive for the same numbers.
    old_half = 4.302653 * 0.3 / math.sqrt(3)
    assert PAPER - 0.36 - old_half < PAPER - 1.0 < iv.low


@pytest.mark.parametrize(
    "mean,code,text",
    [
        (
            PAPER - 2.0,
            "not reproduced",
            "not reproduced (below)",
        ),  # [−2.506, −1.494]: wholly below the band
        (PAPER + 1.6, "not reproduced", "not reproduced (above)"),  # [+1.094, +2.106]: wholly above
        (PAPER - 0.6, "inconclusive", "inconclusive"),  # [−1.106, −0.094]: straddles the lower edge
        (PAPER + 0.2, "reproduced", "reproduced"),  # [−0.306, +0.706]
    ],
)
def test_tost_verdicts_either_side(mean, code, text):
    v = verdicts.accuracy_verdict(verdicts.interval(three(mean)), PAPER, 1.0, "cifar10")
    assert (v.code, v.text) == (code, text)


def test_one_run_is_inconclusive_and_the_rule_states_alpha():
    v = verdicts.accuracy_verdict(verdicts.interval([PAPER]), PAPER, 1.0, "cifar10", metric=FINAL)
    assert (v.code, v.text, v.judged_on) == (
        "inconclusive",
        "inconclusive (one run)",
        "final-epoch test accuracy",
    )
    for words in (
        "TOST",
        "α = 0.05",
        "90% Student-t interval",
        "t(0.95, n−1)",
        "best epoch",
        "collapsed",
    ):
        assert words in verdicts.RULE, words
    assert "95%" not in verdicts.RULE


def test_each_claim_says_which_epoch_it_is():
    assert {e.paper.metric for e in registry.entries() if e.group == "table1"} == {BEST}
    assert (
        get("paper/final").paper.metric == FINAL and get("authors/row3-100ep").paper.metric == BEST
    )
    with pytest.raises(RegistryError, match="Paper.metric"):
        Paper(metric="last")


# ----------------------------------------------------------------------------- the authors' entries


def test_authors_row3_runs_100_epochs_and_cites_the_commits():
    authors, row3 = get("authors/row3-100ep"), get("table1/row3")
    assert authors.group == "authors" and authors.model == row3.model
    assert authors.train.epochs == 100 and row3.train.epochs == 50  # Table 1 keeps the paper's 50
    assert (authors.train.lr, authors.train.t_max, authors.train.optimizer) == (0.1, 200, "adam")
    notes = " ".join(authors.paper.notes)
    for fact in (
        "bc5e69a",
        "73e5de9",
        "num_epoch = 100",
        "loss_epoch.png",
        "dcc500b",
        "blob",
        "4ddc9f9",
    ):
        assert fact in notes, fact
    assert "not a commit" in notes and "could not be checked" not in notes
    # the last epoch's rate of CosineAnnealingLR(T_max=200): 0.051 after 100 epochs, 0.086 after 50
    assert 0.05 * (1 + math.cos(math.pi * 99 / 200)) == pytest.approx(0.0508, abs=1e-4)
    assert 0.05 * (1 + math.cos(math.pi * 49 / 200)) == pytest.approx(0.0859, abs=1e-4)


def _card_text(entry: Entry) -> str:
    """The entry's card, from one hand-made finished run, as one string."""
    row = build.tabulate(fake_runs((entry, 0, 80.0)), selection.Variant(), "cifar10", [entry])[0][0]
    c = cards.card(row, "", "cifar10")
    return " ".join(f"{k}: {v}" for k, v in c.fields) + " " + " ".join(c.deviations)


def test_cards_carry_sources_and_caveats():
    authors = _card_text(get("authors/row3-100ep"))
    assert (
        "73e5de9" in authors
        and "dcc500b" in authors
        and "resbench deviations authors/row3-100ep" in authors
    )
    sgd = _card_text(get("paper/sgd"))
    assert (
        "never published their SGD settings" in sgd
        and "momentum and weight decay" in sgd
        and "unknown" in sgd
    )
    final = _card_text(get("paper/final"))
    assert "0.4283" in final and "final-epoch test accuracy" in final


# -------------------------------------------------------------------------------- the authors' loss


def test_batch_mean_loss_against_a_hand_count():
    # The model passes its input through as logits; logits [a, 0, ..., 0] for label 0 give a
    # cross-entropy of log(1 + 9·exp(−a)) per image. Three batches, the last one short.
    def batch(a: float, n: int):
        x = torch.zeros(n, 10)
        x[:, 0] = a
        return x, torch.zeros(n, dtype=torch.long)

    sizes, logits = (4, 4, 1), (0.0, 2.0, 5.0)
    losses = [math.log(1 + 9 * math.exp(-a)) for a in logits]  # 2.302585, 0.796685, 0.058842
    loader = [batch(a, n) for a, n in zip(logits, sizes, strict=True)]
    stats = run_pass(
        nn.Identity(), loader, nn.CrossEntropyLoss(), torch.device("cpu"), torch.float32
    )
    per_image, acc, batch_mean = stats.loss, stats.acc, stats.loss_batchmean
    assert batch_mean == pytest.approx(sum(losses) / 3, rel=1e-6)  # the authors': 1.052704
    # 1.383963
    assert per_image == pytest.approx(
        sum(n * x for n, x in zip(sizes, losses, strict=True)) / 9, rel=1e-6
    )
    # a = 0 is a tie, which argmax gives to label 0
    assert abs(batch_mean - per_image) > 0.3 and acc == 100.0


def test_training_logs_the_authors_loss_on_the_real_test_pass():
    # 40 test images in batches of 16: 16 + 16 + 8, the short last batch as the authors' 16 of
    # 10,000
    data = synthetic(48, 40, seed=3)
    cfg = TrainConfig(epochs=1, batch_size=16)
    result = train(
        arch(layers=2, blocks=(1, 1), channels=(8, 16)), cfg, data, seed=0, ex=CPU, progress=False
    )
    last = result.history[-1]
    model = result.model.eval()
    from resnet.pipeline import DeviceLoader

    losses, sizes = [], []
    with torch.no_grad():
        for x, y in DeviceLoader(
            data.test_x,
            data.test_y,
            16,
            torch.device("cpu"),
            train=False,
            channels_last=CPU.channels_last,
        ):
            losses.append(nn.functional.cross_entropy(model(x), y).item())
            sizes.append(len(y))
    assert sizes == [16, 16, 8]
    assert last.test_loss_batchmean == pytest.approx(sum(losses) / 3, rel=1e-4)
    assert last.test_loss == pytest.approx(
        sum(n * x for n, x in zip(sizes, losses, strict=True)) / 40, rel=1e-4
    )
    assert "test_loss_batchmean" in last.metrics()


# ----------------------------------------------------------------------------------------- collapse


def test_collapse_lines():
    assert (collapse.CHANCE, collapse.THRESHOLD, collapse.TAKEOFF, collapse.EPOCHS) == (
        10.0,
        12.5,
        15.0,
        3,
    )


@pytest.mark.parametrize(
    "accs,shape",
    [
        ([10.0, 10.0], None),  # shorter than K: not judged
        ([10.3, 10.02, 9.2], "never-took-off"),
        ([15.0, 15.0, 15.0], "never-took-off"),  # 15% itself is not above the take-off line
        ([12.4, 12.6, 12.4, 12.6, 12.4, 12.6], "never-took-off"),  # one noisy epoch is no escape
        ([10.0, 12.6, 14.9, 13.0], "never-took-off"),  # between the lines, never above 15%
        ([10.0, 10.0, 15.1], "slow-start"),  # just above the take-off line
        ([10, 10, 10, 85, 90], "slow-start"),  # at chance early, then ends at 90%
        ([10.10, 14.24, 22.32], "slow-start"),  # the measured slow start
        ([12.5, 30.0, 40.0], "slow-start"),  # 12.5% is at chance
        ([12.6, 30.0, 40.0], "took-off"),  # 12.6% is not
        ([30, 10, 10, 10, 10], "fell-to-chance"),  # good, then at chance
        ([30.0, 50.0, 12.5], "fell-to-chance"),  # the last epoch at 12.5% is at chance
        ([30.0, 50.0, 12.6], "took-off"),  # ... at 12.6% it is not
        ([10.0, 30.0, 10.0], "fell-to-chance"),
        ([36.18, 44.80, 49.21], "took-off"),
    ],
)
def test_collapse_shapes_on_the_whole_curve(accs, shape):
    assert collapse.shape(accs) == shape
    expected = None if shape is None else shape in ("never-took-off", "fell-to-chance")
    assert collapse.collapsed(accs) is expected


def test_the_measured_curves_sit_where_the_lines_say(capsys):
    # docs/collapse-measurements.csv: every measured curve, and the margins the lines leave
    collapse.main(["docs/collapse-measurements.csv", "benchmarks/reference/final-model-curve.csv"])
    out = capsys.readouterr().out.splitlines()
    shapes = [line.rsplit(" -> ", 1)[1] for line in out[:-1]]
    assert shapes.count("slow-start") == 1 and shapes.count("took-off") == 8
    assert "never-took-off" not in shapes and "fell-to-chance" not in shapes
    assert out[-1] == (
        "at chance (<= 12.5%): 4 epochs, highest 10.3%; first epoch above 15% of each run that "
        "took off: lowest 18.9%; epochs between the lines: 14.24"
    )


ROW, FIN = "table1/row1", "paper/final"
# Test accuracy per epoch: every run's last epoch is below its best. paper/final's seed 3 collapsed.
HISTORIES = {
    (ROW, 0): [25.0, 50.0, 71.0, 66.0],
    (ROW, 1): [25.0, 50.0, 71.4, 66.4],
    (ROW, 2): [25.0, 50.0, 71.8, 66.8],
    (FIN, 0): [25.0, 50.0, 80.0, 75.0],
    (FIN, 1): [25.0, 50.0, 80.4, 75.4],
    (FIN, 2): [25.0, 50.0, 80.8, 75.8],
    (FIN, 3): [10.3, 9.8, 10.1, 10.0],
}


def _stats(accs: list[float]) -> list[EpochStats]:
    return [
        EpochStats(e, 2.0 - e / 4, acc - 3, 1.9 - e / 4, acc, 0.1, 1.0, 64.0, 1.95 - e / 4)
        for e, acc in enumerate(accs)
    ]


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """Runs logged by the real train_job, whose training is replaced by the generated histories."""
    tmp = tmp_path_factory.mktemp("fidelity")
    uri = fresh_uri(tmp)
    shared = JobSettings(
        data=SPEC, ex=CPU, tracking_uri=uri, experiment="f", checkpoint_dir=str(tmp / "ckpt")
    )
    data = SPEC.load()
    plan = {}

    def generated(
        model_cfg,
        cfg,
        data,
        *,
        seed=0,
        ex=None,
        on_epoch=None,
        progress=None,
        resume=None,
        on_fallback=None,
    ):
        history = _stats(plan["accs"][: cfg.epochs])
        for i, stats in enumerate(history):
            on_epoch(
                stats, lambda i=i: {"epoch": i, "history": [asdict(h) for h in history[: i + 1]]}
            )
        model = build_model(model_cfg)
        return TrainResult(
            model, history, count_parameters(model), torch.device("cpu"), torch.float32
        )

    ids = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setattr(train_mod, "train", generated)
        # the exported model (seconds a run, tests/test_mlflow_conventions.py covers it) is not
        # what these runs are for: their metrics and tags are
        mp.setattr(RunLogger, "log_model", lambda self, *args, **kwargs: "")
        for (name, seed), accs in HISTORIES.items():
            plan["accs"] = accs
            ids[name, seed] = train_job(shared.job(name, seed), data)
        plan["accs"] = [10.0, 10.0]  # at chance, but only 2 epochs: not judged
        ids["short"] = train_job(
            JobSettings.of(
                {"epochs": 2},
                data=SPEC,
                ex=CPU,
                tracking_uri=uri,
                experiment="f",
                checkpoint_dir=str(tmp / "ckpt"),
            ).job(FIN, 0),
            data,
        )
    return uri, ids


def _report(uri):
    return build.build(
        selection.load_runs(uri, "f"),
        uri,
        "f",
        TableRequest(selection.Variant.of({}, 64, 32), "synthetic"),
        entries=[get(ROW), get(FIN)],
    )


def test_summary_metrics_are_the_last_and_the_best_epoch(logged):
    uri, ids = logged
    client = MlflowClient(uri)
    for key, accs in HISTORIES.items():
        m = client.get_run(ids[key]).data.metrics
        assert m[names.TEST_ACCURACY] == accs[-1] != max(accs), key  # the last epoch, not the best
        assert m[names.BEST_TEST_ACCURACY] == max(accs), key
        assert m[names.TEST_LOSS_BATCHMEAN_FINAL] == pytest.approx(1.95 - 3 / 4)
        assert m[names.TEST_LOSS] == pytest.approx(1.9 - 3 / 4)


def test_table1_is_judged_on_the_best_epoch_and_the_final_model_on_the_last(logged):
    uri, _ = logged
    r = _report(uri)
    row1, final = r.rows
    bests = [max(HISTORIES[ROW, s]) for s in range(3)]
    lasts = [HISTORIES[FIN, s][-1] for s in range(4)]
    assert row1.interval == row1.best == verdicts.interval(bests) and row1.verdict.metric == BEST
    assert row1.final == verdicts.interval([HISTORIES[ROW, s][-1] for s in range(3)])
    assert (
        final.interval == final.final == verdicts.interval(lasts) and final.verdict.metric == FINAL
    )
    assert (
        "best-epoch test accuracy" in row1.verdict.why
        and "final-epoch test accuracy" in final.verdict.why
    )
    t = r.table.set_index("entry")
    assert t.loc[ROW, "verdict_metric"] == "best" and t.loc[FIN, "verdict_metric"] == "final"
    assert t.loc[ROW, "delta"] == pytest.approx(sum(bests) / 3 - 84.8)
    assert t.loc[FIN, "delta"] == pytest.approx(sum(lasts) / 4 - 90.86)
    shown = display.display_table(r).set_index("entry")
    assert list(shown["judged on"]) == ["best epoch", "final epoch"]
    assert shown.loc[ROW, "best-epoch acc (%), mean ± 90% CI"] == row1.best.text()
    assert shown.loc[ROW, "final-epoch acc (%), mean ± 90% CI"] == row1.final.text()
    # every format says which metric a verdict used
    md, page = render.render(r, "markdown"), render.render(r, "html")
    data = json.loads(render.render(r, "json"))
    assert f"### {ROW}: other data: synthetic on best-epoch test accuracy" in md
    assert "judged on best-epoch test accuracy" in data["cards"][ROW]["Verdict"]
    assert "judged on final-epoch test accuracy" in data["cards"][FIN]["Verdict"]
    assert "<th>judged on</th>" in page and verdicts.RULE in data["verdict_rule"]


def test_the_authors_loss_is_compared_with_the_papers(logged):
    uri, _ = logged
    t = _report(uri).table.set_index("entry")
    assert t.loc[FIN, "paper_test_loss"] == 0.42
    assert t.loc[FIN, "test_loss_batchmean"] == pytest.approx(1.2) != t.loc[FIN, "test_loss"]


def test_a_collapsed_run_is_tagged_counted_and_named(logged):
    uri, ids = logged
    client = MlflowClient(uri)
    tags = client.get_run(ids[FIN, 3]).data.tags
    assert (
        tags[names.TAG_COLLAPSED],
        tags[names.TAG_COLLAPSE_SHAPE],
        tags[names.TAG_COLLAPSE_EPOCHS],
    ) == ("true", "never-took-off", "4")  # the whole curve, tagged at its last epoch
    assert client.get_run(ids[FIN, 0]).data.tags[names.TAG_COLLAPSED] == "false"
    assert names.TAG_COLLAPSED not in client.get_run(ids["short"]).data.tags  # 2 epochs: not judged
    r = _report(uri)
    final = r.rows[1]
    assert final.n == 4 and final.seeds == (0, 1, 2, 3)  # counted, never left out
    assert list(final.collapsed["seed"]) == [3] and final.status == "finished (1 collapsed of 4)"
    assert "1 collapsed run of 4: seed 3 (never took off" in final.verdict.why
    assert "10.00% at the end" in final.verdict.why
    assert any("1 collapsed of 4 counted: seed 3 (never took off" in n for n in final.notes)
    rec = r.table.set_index("entry").loc[FIN]
    assert (
        rec["collapsed"] == 1
        and rec["collapsed_seeds"] == "3"
        and rec["status"] == "finished (1 collapsed of 4)"
    )
    assert r.rows[0].status == "finished" and r.table.set_index("entry").loc[ROW, "collapsed"] == 0
    card = display.cards(r)[1]
    assert dict(card.fields)["Collapsed runs"].startswith("1 collapsed of 4 (seed 3: never took")
    assert ["(collapsed: never took off" in label for _, _, label in card.runs] == [
        False,
        False,
        False,
        True,
    ]
    assert "finished (1 collapsed of 4)" in render.render(r, "markdown")


def test_a_collapsed_run_left_out_has_its_own_status(logged):
    uri, ids = logged
    runs = selection.load_runs(uri, "f")
    # an earlier run of seed 3, collapsed, superseded by a later one: listed apart as COLLAPSED
    runs.loc[runs["run_id"].eq(ids[FIN, 3]), "start_time"] = runs[
        "start_time"
    ].min() - pd.Timedelta(hours=1)
    later = runs[runs["run_id"].eq(ids[FIN, 0])].assign(
        seed=3, run_id="later" + "0" * 27, collapsed=False
    )
    r = build.build(
        pd.concat([runs, later], ignore_index=True),
        uri,
        "f",
        TableRequest(selection.Variant.of({}, 64, 32), "synthetic"),
        entries=[get(ROW), get(FIN)],
    )
    other = r.other.set_index("run_id")
    assert other.loc[ids[FIN, 3], "status"] == "COLLAPSED"
    assert display.display_other(r).set_index("run id").loc[ids[FIN, 3], "status"] == "collapsed"
