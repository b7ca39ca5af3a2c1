"""`resbench compare`: two rows of one store, or two result sets, told apart with intervals.

Data flows one way through its modules, each importing only those above it:
  stats   the difference of two samples' means with its 90% interval (paired or Welch t),
          its outcome and the seeds that would settle it (no rows, no reports)
  sides   one `Side` per row of a report's JSON: metric, values, seeds, cost, run key;
          `identity_changes` names how two sides' run keys differ
  lines   pairs of sides as `Line`s with a verdict (two rows) or status (two result sets)
  render  Markdown, HTML (with one plot), CSV and JSON
The command (benchmarks/cli/compare.py) reads the inputs. This package re-exports nothing.
"""
