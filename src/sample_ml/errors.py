"""One error family for the sample package: every failure says what broke and what to do.

The CLI turns any :class:`SampleMLError` into one line on stderr and a non-zero exit code;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


class SampleMLError(Exception):
    """Base class: a failure the user can act on."""

    exit_code = 2


class DataSourceError(SampleMLError):
    """The data could not be read: missing file, unreachable database, unknown table."""


class SchemaError(SampleMLError):
    """The data does not match the declared schema (columns, types, NaNs, empty)."""


class UnknownNameError(SampleMLError):
    """A loader or model name that is not registered."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, sorted(known)
        super().__init__(f"unknown {kind} {name!r}; choose one of: {', '.join(self.known)}")


class ConfigError(SampleMLError):
    """A configuration file or value that cannot be used."""


class BundleError(SampleMLError):
    """A model bundle that is missing, corrupt or incompatible."""


class NotFittedError(SampleMLError, ValueError):
    """An estimator used before ``fit``; mirrors scikit-learn's error of the same name."""


class EvaluationGateError(SampleMLError):
    """The model is worse than the baseline or the configured threshold."""

    exit_code = 1


def run_cli(prog: str, main: Callable[[], int]) -> int:
    """Run a ``python -m`` entry point: a :class:`SampleMLError` becomes one line and its exit code."""
    try:
        return main()
    except SampleMLError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
