"""The `resbench` command line (click): `main` (main.py) and its commands, grouped by what they do.

`runs` trains (run, reproduce, sweep), `measure` times and checks (speed, check), `browse` shows
(list, report, ui); `options` holds the option groups that build the spec objects once, here at
the edge, and `main` the one error handler every command shares.
"""
