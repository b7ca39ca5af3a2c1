"""The report: Table 1 regenerated from the runs in MLflow, beside what the paper printed.

Data flows one way through its modules, each importing only those above it:
  verdicts  intervals over seeds, the verdict rule, parameter-count checks (no runs, no rows)
  rows      one `Row` per entry from the runs `benchmarks.selection` matched: counted runs,
            interval, verdict and run links kept as values
  build     the `Report`: rows, other runs, curves, header and summary (`build`, `tabulate`)
  cards     a reproducibility card per row
  figures   the report's PNGs
  render    Markdown, HTML, CSV and JSON, and writing them (`render`, `write`, `write_file`)
Import the module you need; this package re-exports nothing.
"""
