"""`python -m logitlab.compare SWEEP_DIR [metric=val/acc_best] [output=FILE]` or
`python -m logitlab.compare a=RUN_DIR b=RUN_DIR [output=FILE]` (console script logitlab-compare).

A sweep: every pair of its configurations, paired by (fold, seed): the mean difference a - b,
its 95 % interval and a two-sided p-value (the corrected resampled t-test with folds, the
paired t-test without), written to <sweep>/compare.csv. Two runs on one test split: McNemar's
exact test and a paired bootstrap interval of the accuracy difference, to ./compare.csv.
"""

from __future__ import annotations

import sys
from pathlib import Path

from logitlab.errors import ConfigError, closed_pipe_quiet, user_errors

USAGE = """python -m logitlab.compare SWEEP_DIR [metric=val/acc_best] [output=FILE]
python -m logitlab.compare a=RUN_DIR b=RUN_DIR [output=FILE]

  SWEEP_DIR  a sweep folder (outputs/<task_name>/multirun/<stamp>): its configurations, paired
             by (fold, seed); the corrected resampled t-test with folds, else the paired t-test
  a, b       two run folders tested on the same test split: McNemar's exact test and a paired
             bootstrap 95 % interval of the test accuracy difference a - b
  metric     a metric of the jobs' metrics.json (sweeps; default val/acc_best)
  output     the CSV to write (default: SWEEP_DIR/compare.csv, or ./compare.csv for two runs)"""


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and compare."""
    from logitlab.run.arguments import parse_args

    args = list(sys.argv[1:] if argv is None else argv)
    with user_errors():
        if args and "=" not in args[0] and not args[0].startswith("-"):
            args[0] = f"sweep={args[0]}"
        defaults = {"sweep": None, "a": None, "b": None, "metric": "val/acc_best", "output": None}
        values = parse_args(args, defaults, USAGE, required=None)
        from logitlab.results.compare import compare_runs, compare_sweep, print_table, table
        from logitlab.run.files import write_text

        if values["sweep"] and not (values["a"] or values["b"]):
            sweep = Path(values["sweep"])
            rows = compare_sweep(sweep, values["metric"])
            output = Path(values["output"] or sweep / "compare.csv")
        elif values["a"] and values["b"] and not values["sweep"]:
            rows = [compare_runs(Path(values["a"]), Path(values["b"]))]
            output = Path(values["output"] or "compare.csv")
        else:
            first = USAGE.splitlines()[0]
            raise ConfigError(f"give a sweep folder or a=RUN_DIR b=RUN_DIR; usage: {first}")
        written = write_text(output, table(rows))
    with closed_pipe_quiet():
        print_table(rows, written)


if __name__ == "__main__":
    main()
