"""The report: Table 1 regenerated from the runs in MLflow, beside what the paper printed.

Data flows one way through its modules, each importing only those above it:
  verdicts    intervals over seeds, the verdict rule, parameter-count checks (no runs, no rows)
  seeds       what became of each seed of a row
  rows        one `Row` per entry from the runs `benchmarks.selection` matched: counted runs,
              interval, verdict and run links kept as values
  commands    the `resbench report` command line that tabulates a variant
  table       `TableRequest` (which table) and `Report` (rows, other runs, curves, header, summary)
  build       the `Report` a request asks for over the runs (`build`, `tabulate`)
  recorded    the values a row's runs recorded, as text
  departures  where a row departs from the paper
  cards       a reproducibility card per row
  figures     the report's PNGs
  escape      store values as safe Markdown, CSV and link text
  display     the tables as text cells, shared by Markdown and HTML
  markdown    the Markdown page
  page        the HTML page
  render      CSV and JSON, one format's text (`render`), and writing files (`write`, `write_file`)
Import the module you need; this package re-exports nothing.
"""
