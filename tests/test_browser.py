"""The MLflow UI as people browse it, in a real browser: `resbench ui` on a fresh store holding two
finished `resbench run`s, driven through headless Chromium by Playwright (the distribution's
Chromium binary; nothing is downloaded). Skipped where either is missing.

Screenshots of each page go to results/browser/ for people to look at.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, fresh_uri, resbench
from tracking import ui

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs playwright (pip install -e '.[test]')"
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.slow,  # an MLflow server driven through Chromium: `make test-all`
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium)"),
]

SHOTS = ROOT / "results" / "browser"
RUNS = ("test/tiny seed=0", "table1/row1 seed=0")
WAIT_MS = 120_000  # the UI's first load on a busy 2-core machine


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`resbench ui` on a store of two finished runs; yields (URL, runs link)."""
    tmp = tmp_path_factory.mktemp("browser")
    uri = fresh_uri(tmp)
    made = resbench(
        "run",
        "test/tiny",
        "table1/row1",
        "--epochs",
        "2",
        "--data",
        "synthetic",
        "--limit-train",
        "128",
        "--limit-test",
        "64",
        "--device",
        "cpu",
        "--tracking-uri",
        uri,
        "--experiment",
        "browse",
        cwd=tmp,
        env={"RESBENCH_ENTRIES_PATH": str(ROOT / "tests" / "entries")},
    )
    assert made.returncode == 0, made.stderr
    port = ui.free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "benchmarks.cli",
            "ui",
            "--port",
            str(port),
            "--tracking-uri",
            uri,
            "--experiment",
            "browse",
        ],
        cwd=tmp,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first, second = proc.stdout.readline(), proc.stdout.readline()
        assert "http://127.0.0.1" in first, (
            first,
            proc.stderr.read() if proc.poll() is not None else "",
        )
        yield f"http://127.0.0.1:{port}", second.split(": ", 1)[1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def _page(browser):
    """A fresh browser profile: nothing remembered from an earlier visit."""
    return browser.new_context(viewport={"width": 1600, "height": 1000}).new_page()


def _visible(page, text: str):
    page.get_by_text(text, exact=True).first.wait_for(timeout=WAIT_MS)


def test_the_link_resbench_ui_prints_opens_the_runs_table(served, browser):
    _, runs_link = served
    page = _page(browser)
    page.goto(runs_link)
    for name in RUNS:
        _visible(page, name)
    table = page.get_by_role("grid").first
    for column in ("Run Name", "Dataset", "Source", "Models"):
        assert table.get_by_text(column, exact=True).count(), column
    # the Dataset column, per run
    assert table.get_by_text(re.compile(r"^synthetic \(\w+-train")).count() >= 2
    page.screenshot(path=str(SHOTS / "runs.png"))


def test_a_click_on_the_experiment_opens_its_runs_once_model_training_is_picked(served, browser):
    url, _ = served
    page = _page(browser)
    page.goto(url + "/#/experiments")
    # the switch, once per browser
    page.get_by_text("Model training", exact=True).first.click(timeout=WAIT_MS)
    page.get_by_role("link", name="browse").first.click(timeout=WAIT_MS)
    for name in RUNS:
        _visible(page, name)
    page.screenshot(path=str(SHOTS / "experiment.png"))


def test_a_run_shows_its_dataset_model_and_test_acc_curve(served, browser):
    _, runs_link = served
    page = _page(browser)
    page.goto(runs_link)
    page.get_by_role("link", name=RUNS[0]).first.click(timeout=WAIT_MS)
    _visible(page, "Logged models (1)")
    assert page.get_by_text(
        re.compile(r"^synthetic \(\w+-train")
    ).count()  # its training set, under Datasets
    assert page.get_by_text("Ready", exact=True).count()  # the logged model, under Logged models
    assert page.get_by_text("resbench run").count()  # the Source, with its commit
    page.screenshot(path=str(SHOTS / "run.png"), full_page=True)
    page.get_by_role("tab", name="Model metrics").click()
    # the curve's legend: one line per run, drawn from its steps
    _visible(page, f"{RUNS[0]} (test_acc)")
    card = page.locator("h4[title='test_acc']").locator(
        "xpath=ancestor::div[contains(@data-testid, 'compare-runs-card')][1]"
    )
    line = card.first.locator(
        ".js-plotly-plot path.js-line"
    ).first  # plotly's line through the epochs
    assert "L" in (line.get_attribute("d") or "")
    page.screenshot(path=str(SHOTS / "test_acc.png"))
