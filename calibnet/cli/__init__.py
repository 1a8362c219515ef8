"""The command-line layer: every console script and ``python -m`` tool, built from shared option groups and
run through one error path. Library code never sees an argparse namespace."""
