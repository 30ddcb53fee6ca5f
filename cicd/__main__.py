"""Command line of the toolkit: ``python -m cicd <command>``; the nox sessions call this."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cicd", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = sub.add_parser("demo", help="train, evaluate, predict and serve the sample model; print a report")
    demo.add_argument("--workdir", type=Path, default=ROOT / "artifacts" / "demo", help="where outputs go")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from cicd.demo import report, run_demo

        stages = run_demo(ROOT, args.workdir)
        print(report(stages))
        return 0 if all(s.ok for s in stages) else 1
    raise AssertionError(args.command)  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
