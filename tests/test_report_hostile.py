"""A store whose run names, tags and params were written by a hostile user: every report format
shows them as text. No markup, script, link or formula comes through; the password in the UI
address shows nowhere."""

from __future__ import annotations

import csv
import io
import json
import re
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from benchmarks import storegen
from benchmarks.cli.main import main
from benchmarks.report.escape import csv_text, md_text, safe_url
from tests.conftest import fresh_uri
from tracking import names
from tracking.tracker import connect

SECRET = "s3cret-Pa55"
UI_URL = f"http://alice@lab.org:{SECRET}@ui.lab:5000"
SHOWN_UI_URL = "http://alice@lab.org:***@ui.lab:5000"
HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "[click](javascript:alert(1))",
    "<javascript:alert(1)>",
    "![beacon](http://evil.example/track.png)",
    "</table><h1>out of the table</h1><table>",
    "a | b\n| --- | --- |\n| c | d",
    '" onmouseover="alert(1)',
    "**bold** _it_ `code` ~~gone~~ # heading \\<b>",
    "&lt;script&gt;already escaped",
    '=HYPERLINK("http://evil.example","x")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\tTAB=1+1",
    "\rCR=1+1",
]
FORMULA = '=HYPERLINK("http://evil.example","x")'
ENTRY = "table1/row1"
FLAGS = ["--data", "synthetic", "--limit-train", "64", "--limit-test", "32", "--epochs", "3"]


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    uri = fresh_uri(tmp)
    spec = storegen.StoreSpec(runs=2, epochs=3, entries=(ENTRY,))
    counted = storegen.generate(uri, "h", spec)
    client = MlflowClient(uri)
    # what the counted runs' cards show: their machine's tags
    for tag in (names.TAG_DEVICE, names.TAG_CPU, names.TAG_TORCH):
        client.set_tag(counted[0], tag, HOSTILE[0] + HOSTILE[1])
    # what the CSV's row carries from the counted runs: their code version
    client.set_tag(counted[0], names.TAG_GIT_COMMIT, FORMULA)
    client.set_tag(counted[1], names.TAG_GIT_COMMIT, FORMULA)
    # runs the report lists but does not count: each hostile value as name, entry, overrides,
    # data source, failure and a param
    tracker = connect(uri, "h")
    for i, value in enumerate(HOSTILE):
        record = storegen.run_record(storegen.chosen(spec)[0], 100 + i, spec)
        params, tags = record.params, record.tags
        tags.update(
            {
                names.TAG_ENTRY: value if i % 2 else ENTRY,
                names.TAG_OVERRIDES: value,
                names.TAG_DATA_SOURCE: value,
                names.TAG_FAILURE: value,
            }
        )
        params["lr"] = value
        with tracker.start_run(value, params, tags):
            pass
    out = tmp / "report"
    res = CliRunner().invoke(
        main,
        ["report", "--tracking-uri", uri, "--experiment", "h", *FLAGS]
        + ["--output", str(out), "--ui-url", UI_URL],
    )
    assert res.exit_code == 0, res.output
    return out


def test_no_format_shows_the_password(report_dir):
    for name in ("report.md", "report.html", "report.csv", "report.json"):
        text = (report_dir / name).read_text()
        assert SECRET not in text, name
    assert SHOWN_UI_URL in json.loads((report_dir / "report.json").read_text())["ui_url"]
    assert f"{SHOWN_UI_URL}/#/experiments/" in (report_dir / "report.html").read_text()


# the elements the HTML report is made of; a store value that became markup would add another
OUR_TAGS = {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "table", "thead"}
OUR_TAGS |= {"tbody", "tr", "th", "td", "a", "code", "img", "ul", "li", "details", "summary", "b"}
OUR_TAGS |= {"br"}


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def test_html_carries_no_markup_from_the_store(report_dir):
    page = Tags()
    page.feed((report_dir / "report.html").read_text())
    assert {tag for tag, _ in page.tags} <= OUR_TAGS
    assert sum(t == "h1" for t, _ in page.tags) == 1  # the report's own title only
    for tag, attrs in page.tags:
        assert not any(a.startswith("on") for a in attrs), (tag, attrs)
        assert not attrs.get("href", "http").lower().startswith(("javascript", "data"))
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,")
    text = "".join(page.text)
    assert "<script>alert(1)</script>" in text and "[click](javascript:alert(1))" in text


def test_markdown_shows_store_values_as_text(report_dir):
    md = (report_dir / "report.md").read_text()
    assert "<" not in md  # no tag, comment or autolink can open
    # every link goes to an http(s) address or the figure beside the report
    for target in re.findall(r"(?<!\\)\]\(([^)]*)\)", md):
        assert target.startswith(("http://", "https://")) or target.endswith(".png"), target
    for value in HOSTILE:
        assert md_text(value) in md, value
    # no table gained or lost a column: each table's lines have as many cells as its header
    tables: list[list[list[str]]] = []
    previous = False
    for line in md.splitlines():
        is_row = line.startswith("|")
        if is_row and not previous:
            tables.append([])
        if is_row:
            tables[-1].append(re.split(r"(?<!\\)\|", line))
        previous = is_row
    assert len(tables) >= 3
    for table in tables:
        assert {len(cells) for cells in table} == {len(table[0])}


def test_csv_cells_never_start_a_formula(report_dir):
    rows = list(csv.reader(io.StringIO((report_dir / "report.csv").read_text())))
    header = rows[0]
    cells = [cell for row in rows[1:] for cell in row]
    assert not [c for c in cells if c.startswith(("=", "+", "@", "\t", "\r"))]
    assert not [c for c in cells if c.startswith("-") and not _number(c)]
    row = dict(zip(header, rows[1], strict=True))
    assert row["git_commit"] == "'" + FORMULA  # the value is there, as text


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def test_json_keeps_store_values_exactly(report_dir):
    data = json.loads((report_dir / "report.json").read_text())
    shown = json.dumps(data)
    others = {r["run_name"] for r in data["other_runs"]}
    assert set(HOSTILE) <= others
    assert "<script>" in shown  # data, not markup: a reader escapes it where it shows it


@pytest.mark.parametrize(
    "value, cell",
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-cmd", "'-cmd"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        (-2.5, -2.5),
        (-3, -3),
        (None, None),
    ],
)
def test_csv_text_quotes_only_text_cells_that_start_a_formula(value, cell):
    assert csv_text(value) == cell


@pytest.mark.parametrize(
    "url, target",
    [
        ("javascript:alert(1)", None),
        ("JaVaScRiPt:alert(1)", None),
        (" javascript:alert(1)", None),
        ("data:text/html,<script>", None),
        ("vbscript:x", None),
        ("http://h/#/x", "http://h/#/x"),
        ("https://h/a b)(<>\"'", "https://h/a%20b%29%28%3C%3E%22%27"),
        (None, None),
    ],
)
def test_links_go_only_to_http(url, target):
    assert safe_url(url) == target
