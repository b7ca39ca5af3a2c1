"""How the paper's print is read: row 5 both ways, each figure at the paper's own precision, and
no disagreement mark on a count that matches (a truncated print included).

Reports are built from hand-made run tables (tests/test_verdicts.py's fake_runs): no store.
"""

from dataclasses import replace

import pytest
import torch
from click.testing import CliRunner

from benchmarks.cli.main import main
from benchmarks.registry import get
from benchmarks.report import cards, display, render
from resnet.network import build_model
from tests.test_verdicts import fake_runs, make_report

ROW5, COUNTED = "table1/row5", "table1/row5-as-counted"


def test_list_shows_row5_both_ways_with_their_counts():
    out = CliRunner().invoke(main, ["list", "--group", "table1"]).output
    lines = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "2,2,2,2" in lines[ROW5] and "11,690,058" in lines[ROW5]
    assert "1,1,1,1" in lines[COUNTED] and "5,419,338" in lines[COUNTED]
    assert " 5.4M " in lines[ROW5] and " 5.4M " in lines[COUNTED]
    # the paper's accuracies at the paper's precision
    assert "84.8%" in lines["table1/row1"] and "84.80%" not in lines["table1/row1"]
    assert "89.10%" in lines["table1/row4"] and "90.70%" in lines["table1/row6"]


def test_row5_readings_differ_only_in_blocks_and_cite_each_other():
    printed, counted = get(ROW5), get(COUNTED)
    assert (printed.param_count, counted.param_count) == (11_690_058, 5_419_338)
    assert printed.model.blocks == (2, 2, 2, 2) and counted.model.blocks == (1, 1, 1, 1)
    # the reading as counted is row 3 with K = 2, as row 4 is row 3 with P = 3
    assert counted.model == replace(get("table1/row3").model, skip_kernel=(2, 2, 2, 2))
    assert replace(printed.paper, notes=()) == replace(counted.paper, notes=())
    for e, other in ((printed, COUNTED), (counted, ROW5)):
        notes = " ".join(e.paper.notes)
        assert other in notes and "516,096" in notes and "11,690,058" in notes, e.name
        assert "5,419,338" in notes and "4,903,242" in notes, e.name


def test_the_report_shows_both_and_says_which_the_count_supports():
    entries = [get(n) for n in ("table1/row1", "table1/row2", ROW5, COUNTED)]
    runs = fake_runs(*((e, s, 85.0) for e in entries for s in (0, 1, 2)))
    r = make_report(runs, entries)
    assert [x.entry.name for x in r.rows] == [e.name for e in entries]
    summary = r.summary()
    assert (
        "Table 1 row 5 is judged in 2 readings (table1/row5 11,690,058, table1/row5-as-counted "
        "5,419,338 parameters, printed 5.4M): the parameter-count check supports "
        "table1/row5-as-counted." in summary
    )
    arch_table = display.display_arch(r).set_index("entry")
    # a count that matches a truncated print (2,797,610 printed 2.79M) carries no mark
    assert arch_table.loc["table1/row2", "#params"] == "2,797,610"
    assert arch_table.loc["table1/row2", "params vs print"] == "matches (truncated print)"
    assert arch_table.loc[ROW5, "#params"] == "11,690,058 *"
    assert arch_table.loc[COUNTED, "#params"] == "5,419,338"
    shown = display.display_table(r).set_index("entry")
    assert shown.loc["table1/row1", "paper acc (%)"] == "84.8"
    assert shown.loc[ROW5, "paper acc (%)"] == shown.loc[COUNTED, "paper acc (%)"] == "88.43"
    assert "the paper's 84.8 ± 1" in r.rows[0].verdict.why
    by_entry = {c.entry: dict(c.fields) for c in display.cards(r)}
    assert by_entry["table1/row1"]["Paper"].startswith("84.8% best-epoch")
    for name, other in ((ROW5, COUNTED), (COUNTED, ROW5)):
        assert other in by_entry[name]["Sources and caveats"], name
    md = render.render(r, "markdown")
    assert f"### {ROW5}:" in md and f"### {COUNTED}:" in md


def test_a_figure_with_trailing_zeros_keeps_them():
    row4 = get("table1/row4")
    assert row4.paper.accuracy_text == "89.10" and get("table1/row1").paper.accuracy_text == "84.8"
    runs = fake_runs((row4, 0, 89.0), (row4, 1, 89.2))
    c = cards.card(make_report(runs, [row4]).rows[0], "", "cifar10")
    assert dict(c.fields)["Paper"].startswith("89.10% best-epoch")


@pytest.mark.parametrize("entry,ignored", [("table1/row4", True), ("table1/row3", False)])
def test_p3_on_the_4x4_map_pools_only_its_top_left(entry, ignored):
    # the last layer's 4x4 map with its last row and column changed: row 4's P = 3 never sees them
    torch.manual_seed(0)
    model = build_model(get(entry).model).eval()
    x = torch.randn(2, 3, 32, 32)

    def change_edges(module, args, out):
        out = out.clone()
        out[:, :, 3, :] += 5.0
        out[:, :, :, 3] += 5.0
        return out

    with torch.no_grad():
        before = model(x)
        handle = model.layers.register_forward_hook(change_edges)
        after = model(x)
        handle.remove()
    assert torch.equal(before, after) is ignored


def _card(name: str) -> dict:
    e = get(name)
    row = make_report(fake_runs((e, 0, 85.0), (e, 1, 85.4)), [e]).rows[0]
    c = cards.card(row, "", "cifar10")
    return {**dict(c.fields), "deviations": " ".join(c.deviations)}


def test_cards_carry_the_assumptions_and_their_evidence():
    for name in ("table1/row1", "table1/row4", ROW5, COUNTED, "table1/row6"):
        devs = _card(name)["deviations"]
        assert "assumed, epochs: prose against code: assumes exactly 50 epochs" in devs, name
        assert "89.08% at epoch 49, 89.21% best so far" in devs and "90.70%" in devs, name
        assert "dcc500b" in devs and "not a commit but a blob" in devs, name
        assert "assumed, compiled step" in devs and "assumed, TF32" in devs, name
    assert "assumed, first convolution when F = 5" in _card("table1/row1")["deviations"]
    assert "first convolution" not in _card("table1/row3")["deviations"]
    assert "assumed, average pool smaller than the last map" in _card("table1/row4")["deviations"]
    for name in (ROW5, COUNTED):
        devs = _card(name)["deviations"]
        assert "unpadded shortcut convolution" in devs and "Table 1 row 5's blocks" in devs
    final = _card("paper/final")["deviations"]
    assert "epochs: prose against code" not in final and "assumed, TF32" in final


def test_the_epoch_evidence_is_what_the_authors_curve_prints():
    from benchmarks import deviations

    printed = deviations.fifty_epochs()
    assert printed.startswith("the authors' final-model curve: 89.08% at epoch 49, 89.21% best")
    assert "Table 1 prints 90.70% for row 6" in printed
    epochs = next(d for d in deviations.DEVIATIONS if d.name == "epochs: prose against code")
    assert "89.08% at epoch 49, 89.21% best so far" in epochs.effect
    assert "python -m benchmarks.deviations" in epochs.command
