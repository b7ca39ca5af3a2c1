"""The `resbench` command line (click): `main` (main.py) and its commands, grouped by what they do.

`runs` trains (run, reproduce, sweep), `measure` times and checks (speed, check), `browse` shows
(report, deviations, ui) and `catalog` lists the entries; `options` holds the option groups that
build the spec objects once, here at the edge, and `main` the one error handler every command
shares, importing each command's module only when that command is used.
"""
