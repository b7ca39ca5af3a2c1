"""`resbench compare` over generated stores and the report JSONs written from them.

Store A holds table1/row1, row3 and row6 and paper/final (three seeds each) and table1/row2 (one
seed); store B holds row1, row3 and row4 with other noise, row3's seed 0 collapsed and its seed 1
diverged; store C holds row1 on more training images. The statistics are checked against scipy's
own tests and for their error rates.
"""

import io
import json
import random
import time

import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats as scipy_stats

from benchmarks.cli.main import main
from benchmarks.compare import lines, sides, stats
from benchmarks.compare.stats import PAIRED, WELCH, Sample, difference
from benchmarks.storegen import StoreSpec, generate
from tests.conftest import fresh_uri
from tests.shared_server import free_port

EPOCHS = 3


def flags(uri: str, limit_train: int = 64) -> list[str]:
    return [
        *("--tracking-uri", uri, "--experiment", "t", "--data", "synthetic"),
        *("--epochs", str(EPOCHS), "--limit-train", str(limit_train), "--limit-test", "32"),
    ]


def cli(*args: str):
    return CliRunner().invoke(main, ["compare", *args])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """{"a", "b", "c": report JSON path} and the store URIs behind them."""
    tmp = tmp_path_factory.mktemp("compare")
    uris = {name: fresh_uri(tmp, f"{name}.db") for name in "abc"}
    generate(
        uris["a"],
        "t",
        StoreSpec(12, EPOCHS, ("table1/row1", "table1/row3", "table1/row6", "paper/final")),
    )
    generate(uris["a"], "t", StoreSpec(1, EPOCHS, ("table1/row2",)))
    # row3's seed 0 never takes off, its seed 1 diverges
    fates = ("took-off", "never-took-off", "took-off", "took-off", "diverged")
    b_entries = ("table1/row1", "table1/row3", "table1/row4")
    generate(uris["b"], "t", StoreSpec(9, EPOCHS, b_entries, seed=7, fates=fates))
    generate(uris["c"], "t", StoreSpec(3, EPOCHS, ("table1/row1",), limit_train=128))
    paths = {}
    for name, uri in uris.items():
        paths[name] = tmp / f"{name}.json"
        limit = 128 if name == "c" else 64
        res = CliRunner().invoke(
            main, ["report", *flags(uri, limit), "--group", "table1", "--output", str(paths[name])]
        )
        assert res.exit_code == 0, res.output
    return {"paths": paths, "uris": uris, "tmp": tmp}


def edited(files, name: str, edit) -> str:
    """A copy of report `name` changed by `edit(report)`, as a new file."""
    report = json.loads(files["paths"][name].read_text())
    edit(report)
    path = files["tmp"] / f"{name}-{random.getrandbits(32):x}.json"
    path.write_text(json.dumps(report))
    return str(path)


def row_of(report: dict, entry: str) -> dict:
    return next(r for r in report["rows"] if r["entry"] == entry)


def lines_of(res) -> dict[str, dict]:
    assert res.exit_code == 0, res.output
    return {line["name"]: line for line in json.loads(res.output)["lines"]}


# ------------------------------------------------------------------------------------ statistics


def test_welch_interval_is_scipys():
    a, b = [91.2, 90.4, 92.0, 90.9], [89.1, 90.2, 88.7]
    d = difference(Sample.of(dict(enumerate(a))), Sample.of({10 + i: v for i, v in enumerate(b)}))
    ci = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.90)
    assert d.test == WELCH and d.low == pytest.approx(ci.low) and d.high == pytest.approx(ci.high)
    # from a report's summary alone (no per-seed values) the same interval
    summary = lambda xs: Sample(len(xs), sum(xs) / len(xs), float(pd.Series(xs).std()))  # noqa: E731
    d2 = difference(summary(a), summary(b))
    assert (d2.test, d2.low, d2.high) == (WELCH, pytest.approx(d.low), pytest.approx(d.high))


def test_paired_interval_is_scipys_over_the_shared_seeds():
    a = {0: 91.2, 1: 90.4, 2: 92.0, 3: 90.9, 7: 80.0}
    b = {0: 90.1, 1: 90.0, 2: 91.1, 3: 90.6, 9: 99.0}
    d = difference(Sample.of(a), Sample.of(b))
    ci = scipy_stats.ttest_rel(
        [a[s] for s in range(4)], [b[s] for s in range(4)]
    ).confidence_interval(0.90)
    assert d.test == PAIRED and d.seeds == (0, 1, 2, 3) and d.left_out == ((7,), (9,))
    assert (d.low, d.high) == (pytest.approx(ci.low), pytest.approx(ci.high))


def test_a_constant_shift_on_every_seed_is_a_difference():
    d = difference(Sample.of({0: 91.0, 1: 92.5}), Sample.of({0: 90.0, 1: 91.5}))
    assert (d.outcome, d.low, d.high) == (stats.HIGHER, 1.0, 1.0)


def test_one_run_a_side_gives_no_interval():
    d = difference(Sample.of({0: 91.0}), Sample.of({0: 80.0, 1: 81.0}))
    assert d.test is None and d.low is None and d.outcome == stats.TOO_FEW and d.mean == 10.5


def test_error_rates_on_identical_and_shifted_distributions():
    """Over many draws: about 10% of identical pairs (3 seeds a side) read as a difference (the
    90% interval's rate), and a shift of three spreads (5 seeds a side) is found nearly always."""
    rng = random.Random(1)
    draw = lambda shift, n=3: Sample.of({s: rng.gauss(90 + shift, 0.5) for s in range(n)})  # noqa: E731
    same = [difference(draw(0), draw(0)).outcome for _ in range(1000)]
    assert 0.06 < sum(o != stats.NO_DIFFERENCE for o in same) / 1000 < 0.14
    shifted = [difference(draw(1.5, 5), draw(0, 5)).outcome for _ in range(200)]
    assert sum(o == stats.HIGHER for o in shifted) / 200 > 0.9


def test_seeds_to_settle_close_the_interval_at_the_observed_spread():
    first, second = Sample(3, 90.6, 0.8), Sample(3, 90.0, 0.7)
    d = difference(first, second)
    assert d.outcome == stats.NO_DIFFERENCE and d.settle > 3
    at = lambda n: difference(Sample(n, 90.6, 0.8), Sample(n, 90.0, 0.7)).outcome  # noqa: E731
    assert at(d.settle) == stats.HIGHER and at(d.settle - 1) == stats.NO_DIFFERENCE


# --------------------------------------------------------------------------- two rows of one store


def test_two_rows_of_one_store(files):
    res = cli("table1/row1", "table1/row3", *flags(files["uris"]["a"]))
    assert res.exit_code == 0, res.output
    out = res.output
    assert "**worse**: table1/row1 − table1/row3 = -" in out
    assert "paired t over seeds 0, 1, 2" in out
    assert "| parameters | 1,922,074 | 4,903,242 |" in out
    assert "| forward MFLOPs per image |" in out and "| wall time per run |" in out
    assert "judged on different metrics" not in out
    back = lines_of(
        cli("table1/row3", "table1/row1", *flags(files["uris"]["a"]), "--format", "json")
    )
    line = back["table1/row3 vs table1/row1"]
    assert line["status"] == "better" and line["ci_low"] > 0 and line["test"] == PAIRED
    assert line["first_params"] == 4903242 and line["second_n"] == 3


def test_rows_on_different_metrics_say_so(files):
    res = cli("table1/row6", "paper/final", *flags(files["uris"]["a"]))
    assert res.exit_code == 0, res.output
    assert (
        "judged on different metrics: table1/row6 on its best-epoch test accuracy, paper/final on "
        "its final-epoch test accuracy" in res.output
    )
    res = cli("table1/row6", "paper/final", *flags(files["uris"]["a"]), "--metric", "final")
    assert "judged on different metrics" not in res.output
    assert "| judged on | final-epoch test accuracy | final-epoch test accuracy |" in res.output


def test_one_seed_is_too_few_never_a_verdict(files):
    res = cli("table1/row1", "table1/row2", *flags(files["uris"]["a"]), "--fail-on", "0")
    assert res.exit_code == 0, res.output
    assert "**too few seeds**" in res.output and "table1/row2 has 1 run: no interval" in res.output
    assert (
        "per side would settle a difference of this size at the other side's spread" in res.output
    )


def test_fail_on_between_two_rows(files):
    args = ("table1/row1", "table1/row3", *flags(files["uris"]["a"]))
    res = cli(*args, "--fail-on", "1")
    assert (
        res.exit_code == 1
        and "fail-on 1: worse by more than 1 points: table1/row1 vs" in res.stderr
    )
    assert cli(*args, "--fail-on", "20").exit_code == 0


def test_two_rows_on_different_data_say_so_in_the_verdict():
    def row(entry, values, data):
        report = {"data": data, "overrides": "", "rows": [], "other_runs": []}
        record = {"entry": entry, "n": 3, "seeds": "0,1,2", "verdict_metric": "best"}
        record |= {"best_by_seed": ",".join(map(str, values)), "config_hash": entry}
        return sides.side(report, record)

    line = lines.rows(row("a/x", [92, 93, 94], "synthetic"), row("a/y", [80, 81, 83], "cifar10"))
    assert line.status == "better (compared across data: synthetic vs cifar10)"
    assert not line.comparable and not lines.regressions([line], 0)


# ------------------------------------------------------------------------------- two result sets


def test_a_set_against_itself_is_unchanged(files):
    a = str(files["paths"]["a"])
    res = cli(a, a, "--fail-on", "0")
    assert res.exit_code == 0, res.output
    assert "Summary: 3 unchanged within noise, 1 too few seeds." in res.output
    assert "no finished run in either set: table1/row2" not in res.output
    assert "- table1/row3: no spread: the two sides agree on every value compared" in res.output


def test_rows_that_appear_and_disappear(files):
    lines = lines_of(cli(str(files["paths"]["a"]), str(files["paths"]["b"]), "--format", "json"))
    assert lines["table1/row4"]["status"] == "new" and lines["table1/row4"]["old_n"] == 0
    assert lines["table1/row6"]["status"] == "gone" and lines["table1/row6"]["new_n"] == 0
    assert lines["table1/row2"]["status"] == "gone"  # one run in the old set, none in the new
    assert lines["table1/row1"]["test"] == PAIRED and "table1/row5" not in lines


def test_a_real_difference_is_found_and_gates(files):
    def lower_row3(report):
        row = row_of(report, "table1/row3")
        row["best_by_seed"] = ",".join(str(float(v) - 3) for v in row["best_by_seed"].split(","))
        row["best_mean"] -= 3

    a, worse = str(files["paths"]["a"]), edited(files, "a", lower_row3)
    res = cli(a, worse, "--fail-on", "1")
    assert res.exit_code == 1
    assert "| table1/row3 | best-epoch test accuracy |" in res.output and "moved down" in res.output
    assert "fail-on 1: worse by more than 1 points: table1/row3 (-3.00" in res.stderr
    assert cli(a, worse, "--fail-on", "5").exit_code == 0
    assert cli(worse, a, "--fail-on", "1").exit_code == 0  # better is never a regression


def test_summaries_alone_use_welch(files):
    def summaries(report):
        for row in report["rows"]:
            row.pop("best_by_seed", None), row.pop("final_by_seed", None)

    old = edited(files, "a", summaries)
    lines = lines_of(cli(old, str(files["paths"]["a"]), "--format", "json"))
    assert lines["table1/row3"]["test"] == WELCH and lines["table1/row3"]["difference"] == 0


def test_a_changed_identity_is_named(files):
    lines = lines_of(cli(str(files["paths"]["a"]), str(files["paths"]["c"]), "--format", "json"))
    row1 = lines["table1/row1"]
    assert row1["status"] == (
        "identity changed (data: files synthetic-64-32-0 vs synthetic-128-32-0, "
        "data limits: train 64, test 32 vs train 128, test 32)"
    )

    def reconfigured(report):
        row_of(report, "table1/row3")["config_hash"] = "0" * 12

    row3 = row_of(json.loads(files["paths"]["a"].read_text()), "table1/row3")
    other = "fp32" if row3["key_precision"] == "bf16" else "bf16"

    def in_other_precision(report):
        row_of(report, "table1/row3")["key_precision"] = other

    a = str(files["paths"]["a"])
    res = cli(a, edited(files, "a", reconfigured), "--fail-on", "0")
    assert res.exit_code == 0 and "| identity changed (config) |" in res.output
    res = cli(a, edited(files, "a", in_other_precision), "--fail-on", "0")
    rest = row3["mode"].split(", ", 1)[1]  # the pipeline and compilation, unchanged
    assert res.exit_code == 0
    assert f"| identity changed (mode: {row3['mode']} vs {other}, {rest}) |" in res.output


def test_a_report_without_run_keys_is_compared_on_config_and_data(files):
    def unkeyed(report):
        for row in report["rows"]:
            for column in sides.KEYED - {"data"}:
                row.pop(column)

    lines = lines_of(cli(edited(files, "a", unkeyed), str(files["paths"]["a"]), "--format", "json"))
    row3 = lines["table1/row3"]
    assert row3["status"] == "unchanged within noise" and row3["old_mode"] is None
    assert "old: its report records no run mode or data limits" in row3["notes"]


def test_collapsed_and_diverged_seeds_are_named(files):
    res = cli(str(files["paths"]["a"]), str(files["paths"]["b"]))
    assert "- table1/row3: new: 3 seeds planned: 2 finished (1 collapsed), 1 diverged" in res.output
    assert "- table1/row3: new: 1 collapsed of 2 counted (seed 0), in the difference" in res.output
    assert "- table1/row3: new: diverged, not pooled: table1/row3 seed=1" in res.output
    assert (
        "- table1/row3: collapsed seeds set the spread, so no number of seeds is given"
        in res.output
    )
    assert "; without them: " in res.output and "- table1/row3: about" not in res.output
    row3 = lines_of(cli(str(files["paths"]["a"]), str(files["paths"]["b"]), "--format", "json"))[
        "table1/row3"
    ]
    assert (row3["paired_seeds"], row3["new_collapsed_seeds"]) == ("0,2", "0")
    assert row3["new_diverged_runs"] == "table1/row3 seed=1"


def test_baseline_against_the_store(files):
    res = cli("--baseline", str(files["paths"]["a"]), *flags(files["uris"]["a"]), "--fail-on", "0")
    assert res.exit_code == 0, res.output
    assert "Summary: 3 unchanged within noise, 1 too few seeds." in res.output
    assert "# the store (sqlite:///" in res.output


def test_formats(files):
    a, b = str(files["paths"]["a"]), str(files["paths"]["b"])
    table = pd.read_csv(io.StringIO(cli(a, b, "--format", "csv").output))
    assert {"name", "status", "difference", "ci_low", "ci_high", "test"} <= set(table.columns)
    assert set(table["name"]) == {
        "table1/row1",
        "table1/row2",
        "table1/row3",
        "table1/row4",
        "table1/row6",
    }
    page = cli(a, b, "--format", "html").output
    assert page.startswith("<!doctype html>") and "data:image/png;base64," in page


def test_store_values_render_as_text(files):
    hostile = '<img src=x onerror=alert(1)>|</table> $\\frac{$'

    def rename(report):
        row_of(report, "table1/row3")["entry"] = hostile

    a, b = edited(files, "a", rename), edited(files, "b", rename)
    md = cli(a, b).output
    assert "<img src=x" not in md and "</table>" not in md and "&lt;img src=x" in md
    page = cli(a, b, "--format", "html").output
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    formula = '=HYPERLINK("http://x.example","y")'

    def formula_name(report):
        row_of(report, "table1/row3")["entry"] = formula

    a, b = edited(files, "a", formula_name), edited(files, "b", formula_name)
    table = pd.read_csv(io.StringIO(cli(a, b, "--format", "csv").output))
    assert "'" + formula in set(table["name"]) and formula not in set(table["name"])


@pytest.mark.parametrize(
    "args, error",
    [
        (["missing.json", "other.json"], "error: missing.json: no such file"),
        (["table1/row1", "table1/row1"], "error: table1/row1 against itself"),
        (["table1/row1", "x.json"], "error: compare takes two entries, two report JSON files"),
        (["table1/nope", "table1/row1"], "error: "),
    ],
)
def test_bad_input_is_one_line(files, args, error):
    res = cli(*args, *flags(files["uris"]["a"]))
    assert res.exit_code == 2 and res.stderr.startswith(error) and res.stderr.count("\n") == 1


def test_files_that_are_not_reports(files, tmp_path):
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "other.json").write_text('{"rows": [{"name": "x"}]}')
    (tmp_path / "broken.json").write_text('{"rows": [')
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00")
    a = str(files["paths"]["a"])
    for name, error in (
        ("list.json", "not a report JSON"),
        ("other.json", "not a report JSON"),
        ("broken.json", "not JSON (Expecting value, line 1)"),
        ("binary.json", "not a text file"),
    ):
        res = cli(a, str(tmp_path / name))
        assert res.exit_code == 2 and f"{name}: {error}" in res.stderr, res.stderr
        assert res.stderr.count("\n") == 1 and not res.stdout


def test_an_unreachable_store_is_refused_within_seconds(files):
    uri = f"http://alice:s3cret@127.0.0.1:{free_port()}"
    for args in (["table1/row1", "table1/row3"], ["--baseline", str(files["paths"]["a"])]):
        start = time.monotonic()
        res = cli(*args, "--tracking-uri", uri)
        assert res.exit_code == 2 and time.monotonic() - start < 10, res.output
        assert res.stderr.startswith("error: tracking server http://alice:***@127.0.0.1:")
        assert "s3cret" not in res.output
