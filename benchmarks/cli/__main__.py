"""`python -m benchmarks.cli`: the `resbench` command."""

from benchmarks.cli.main import main

main()
