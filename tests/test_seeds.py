"""Every seed of a row accounted for (benchmarks/report/seeds.py), on hand-made run tables: a row
over diverged or collapsed seeds never reads plainly "reproduced", a rerun does not erase a
divergence, and a collapsed seed's effect on the interval is stated."""

from dataclasses import replace

import numpy as np
import pytest

from benchmarks.registry import get
from benchmarks.report import cards, display, render, verdicts
from benchmarks.report.table import Report, TableRequest
from tests.test_verdicts import fake_runs, make_report

ROW3 = get("table1/row3")  # paper 91.78, judged on the best epoch (fake_runs: best = acc + 0.5)


def _row(runs, planned=None):
    r = make_report(runs, [ROW3]) if planned is None else _planned(runs, planned)
    return r, r.rows[0]


def _planned(runs, planned):
    from benchmarks import selection
    from benchmarks.report import build

    rows, other = build.tabulate(runs, selection.Variant(), "cifar10", [ROW3], planned=planned)
    return Report("exp", "sqlite:///x.db", "cifar10", selection.Variant(), rows, other, None)


def good(seed):
    return (ROW3, seed, 91.28 + 0.1 * (seed % 3))  # best 91.78-91.98: well inside the band


def diverged(seed):
    return (ROW3, seed, None, {"status": "FAILED", "diverged": True, "best": None})


def test_a_row_with_a_diverged_seed_does_not_read_reproduced():
    r, row = _row(fake_runs(good(0), good(1), good(2), diverged(3)))
    assert row.verdict.code == verdicts.REPRODUCED  # the interval of the 3 that trained is inside
    assert row.verdict.text == "reproduced on the seeds that trained (1 of 4 diverged)"
    assert "seed 3 diverged and is not in the interval" in row.verdict.why
    assert row.status == "finished (1 diverged of 4)"
    assert r.summary().startswith(
        "0 of 1 rows reproduced on CIFAR-10, 1 more only on the seeds that trained (table1/row3)"
    )
    rec = r.table.iloc[0]
    assert (rec["seeds_planned"], rec["seeds_finished"], rec["seeds_diverged"]) == (4, 3, 1)
    assert rec["seeds_account"] == "4 seeds planned: 3 finished, 1 diverged, 0 killed"
    card = dict(cards.card(row, "", "cifar10").fields)
    assert card["Seeds"].startswith("4 seeds planned: 3 finished, 1 diverged, 0 killed")
    assert "diverged: 3" in card["Seeds"]
    shown = display.display_table(r).iloc[0]
    assert shown["verdict"] != "reproduced" and "1 of 4 diverged" in shown["verdict"]


def test_a_rerun_does_not_erase_the_divergence():
    runs = fake_runs(good(0), good(1), diverged(2), good(2))  # seed 2 diverged, then finished
    r, row = _row(runs)
    assert row.seeds == (0, 1, 2) and row.seeds_of.diverged == (2,) == row.seeds_of.retried
    assert row.verdict.text == "reproduced (1 rerun after diverging)"
    assert "seed 2 diverged and finished only on a rerun" in row.verdict.why
    assert r.table.iloc[0]["seeds_diverged"] == 1
    assert row.status == "finished (1 rerun after diverging of 3)"
    assert "1 diverged run not counted" in row.notes
    assert (
        "diverged and finished on a rerun" in dict(cards.card(row, "", "cifar10").fields)["Seeds"]
    )


def test_a_counted_collapse_says_what_it_does_to_the_interval():
    runs = fake_runs(
        good(0), good(1), good(2), (ROW3, 3, 9.5, {"collapsed": True, "shape": "never-took-off"})
    )
    r, row = _row(runs)
    assert row.verdict.code == verdicts.INCONCLUSIVE and row.interval.n == 4
    why = row.verdict.why
    assert "more seeds narrow it" not in why and "more seeds do not narrow it" in why
    without = verdicts.interval([91.78, 91.88, 91.98])
    assert f"the 90% interval without it is [{without.low:.2f}, {without.high:.2f}]" in why
    assert "seed 3 (never took off" in why
    assert row.verdict.text == "inconclusive (1 of 4 collapsed)"
    assert row.status == "finished (1 collapsed of 4)"


def test_without_failures_more_seeds_still_narrow_it():
    runs = fake_runs((ROW3, 0, 90.5), (ROW3, 1, 91.6))
    row = _row(runs)[1]
    assert row.verdict.code == verdicts.INCONCLUSIVE and row.verdict.text == "inconclusive"
    assert row.verdict.why.endswith("more seeds narrow it") and row.status == "finished"


def test_killed_failed_and_never_started_seeds_are_counted():
    runs = fake_runs(
        good(0),
        good(1),
        (ROW3, 2, None, {"status": "KILLED", "best": None}),
        (ROW3, 3, None, {"status": "FAILED", "best": None, "failure": "RuntimeError: oom"}),
    )
    r, row = _row(runs, planned=5)
    sd = row.seeds_of
    assert (sd.planned, sd.finished, sd.killed, sd.failed, sd.never) == (
        (0, 1, 2, 3, 4),
        (0, 1),
        (2,),
        (3,),
        (4,),
    )
    assert sd.text() == (
        "5 seeds planned: 2 finished, 0 diverged, 1 killed, 1 failed, 1 never started"
    )
    assert row.status == "finished (1 killed, 1 failed, 1 never started of 5)"
    assert row.verdict.text == "reproduced"  # nothing diverged or collapsed among the counted


@pytest.mark.parametrize("later", [True, False])
def test_a_seed_killed_after_it_finished_counts_its_finished_run(later):
    runs = fake_runs(good(0), good(1), (ROW3, 1, None, {"status": "KILLED", "best": None}))
    if not later:
        runs.loc[2, "start_time"] = runs["start_time"].min() - np.timedelta64(1, "h")
    row = _row(runs)[1]
    assert row.seeds == (0, 1) and row.seeds_of.killed == ()


# ------------------------------------------------------------------------------- a generated store


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Runs as train_job leaves them, on CIFAR-10 in the entries' own configuration: table1/row3
    with one diverged seed of four, table1/row1 with the four shapes of a curve."""
    from benchmarks.storegen import StoreSpec, generate
    from tests.conftest import fresh_uri

    tmp = tmp_path_factory.mktemp("seeds")
    uri = fresh_uri(tmp)
    base = StoreSpec(runs=4, epochs=None, data="cifar10", limit_train=0, limit_test=0)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        generate(
            uri, "t", replace(base, entries=(ROW3.name,), fates=("took-off",) * 3 + ("diverged",))
        )
        shapes = ("took-off", "slow-start", "never-took-off", "fell-to-chance")
        generate(uri, "t", replace(base, entries=("table1/row1",), fates=shapes, seed=1))
    return uri


def _store_report(uri):
    from benchmarks import selection
    from benchmarks.report import build

    entries = [ROW3, get("table1/row1")]
    runs = selection.load_runs(uri, "t")
    return build.build(runs, uri, "t", TableRequest(planned=4), entries)


def test_generated_a_row_with_one_diverged_seed_does_not_read_reproduced(generated):
    r = _store_report(generated)
    row3 = r.rows[0]
    assert row3.n == 3 and row3.seeds_of.diverged == (3,)
    assert row3.verdict.code == verdicts.REPRODUCED
    assert row3.verdict.text == "reproduced on the seeds that trained (1 of 4 diverged)"
    md = render.render(r, "markdown")
    assert "reproduced on the seeds that trained (1 of 4 diverged)" in md
    assert "| reproduced |" not in md


def test_generated_the_three_collapse_shapes_are_labelled_apart(generated):
    row1 = _store_report(generated).rows[1]
    shapes = dict(zip(row1.runs["seed"].astype(int), row1.runs["shape"], strict=True))
    assert shapes == {0: "took-off", 1: "slow-start", 2: "never-took-off", 3: "fell-to-chance"}
    assert row1.seeds_of.collapsed == (2, 3) and row1.seeds_of.slow == (1,)
    labels = [label for _, _, label in cards.card(row1, "", "cifar10").runs]
    assert labels[1].endswith("(slow start)")
    assert "(collapsed: never took off" in labels[2] and "(collapsed: fell to chance" in labels[3]
    assert "seed 2 (never took off" in row1.verdict.why
    assert "seed 3 (fell to chance" in row1.verdict.why
    assert any("slow start" in n and "seed 1" in n for n in row1.notes)
    assert row1.status == "finished (2 collapsed of 4)"


def test_generated_a_rerun_keeps_the_divergence(tmp_path):
    from benchmarks.storegen import StoreSpec, generate
    from tests.conftest import fresh_uri

    uri = fresh_uri(tmp_path)
    base = StoreSpec(runs=4, epochs=None, data="cifar10", limit_train=0, limit_test=0)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path)
        row3 = replace(base, entries=(ROW3.name,))
        generate(uri, "t", replace(row3, fates=("took-off",) * 3 + ("diverged",)))
        generate(uri, "t", replace(row3, runs=1, first_seed=3, seed=2))  # seed 3 again: finishes
    row3 = _store_report(uri).rows[0]
    assert row3.n == 4 and row3.seeds_of.retried == (3,) and row3.seeds_of.diverged == (3,)
    assert "rerun after diverging" in row3.verdict.text
    assert row3.verdict.text != "reproduced"
