"""The deviation table (benchmarks/deviations.py): complete, honest about what is unmeasured, per
entry, and one source for `resbench deviations` and docs/FIDELITY.md."""

import json
from pathlib import Path

from click.testing import CliRunner

from benchmarks import deviations
from benchmarks.cli.main import main
from benchmarks.deviation_formats import markdown
from benchmarks.registry import get

ROOT = Path(__file__).resolve().parent.parent


def test_every_deviation_has_an_effect_or_says_not_measured():
    named = {d.name for d in deviations.DEVIATIONS}
    for required in (
        "bf16 autocast",
        "channels_last",
        "fused Adam",
        "device-side augmentation (fast pipeline)",
        "data source",
        "epochs: prose against code",
        "best or last epoch",
        "DataParallel",
        "first convolution when F = 5",
        "unpadded shortcut convolution when K > 1",
        "average pool smaller than the last map",
        "compiled step",
        "TF32",
    ):
        assert required in named, required
    for d in deviations.DEVIATIONS:
        assert d.effect and d.command and d.authors and d.resbench, d.name
        if d.effect.startswith(deviations.NOT_MEASURED):
            assert d.command.startswith("would:"), d.name  # what would measure it
        else:  # a measured effect names the committed command or test that prints it
            assert not d.command.startswith("would:") and d.command.startswith("`"), d.name
    # a figure no committed command prints is not a measurement
    channels_last = next(d for d in deviations.DEVIATIONS if d.name == "channels_last")
    assert channels_last.effect.startswith(deviations.NOT_MEASURED)
    assert "1.4e-5" not in channels_last.effect and "8 steps" not in channels_last.effect
    aug = next(d for d in deviations.DEVIATIONS if d.name.startswith("device-side"))
    assert "bitwise equal" in aug.effect and "tests/test_pipeline.py" in aug.command


def test_deviations_apply_per_entry():
    def names_for(entry):
        return [d.name for d in deviations.applicable(get(entry))]

    assert "epochs: prose against code" in names_for(
        "table1/row3"
    ) and "SGD settings" not in names_for("table1/row3")
    assert "epochs: prose against code" in names_for("authors/row3-100ep")
    assert "SGD settings" in names_for(
        "paper/sgd"
    ) and "epochs: prose against code" not in names_for("paper/final")


def test_the_command_and_the_doc_show_one_table():
    cli = CliRunner()
    res = cli.invoke(main, ["deviations", "--format", "markdown"])
    assert res.exit_code == 0 and res.output == markdown()
    # regenerate the doc if this fails
    assert markdown() in (ROOT / "docs" / "FIDELITY.md").read_text()
    res = cli.invoke(main, ["deviations", "paper/sgd"])
    assert res.exit_code == 0 and "SGD settings" in res.output and "not measured" in res.output
    res = cli.invoke(main, ["deviations", "paper/sgd", "--format", "json"])
    assert {d["name"] for d in json.loads(res.output)} == {
        d.name for d in deviations.applicable(get("paper/sgd"))
    }
    res = cli.invoke(main, ["deviations", "nope/x"])
    assert res.exit_code == 2 and "error: unknown entry 'nope/x'" in res.output
