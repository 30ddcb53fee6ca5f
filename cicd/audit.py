"""Known vulnerabilities in the pinned dependencies: ``pip-audit --strict`` over the hashed locks.

Run by ``lint`` inside the build image (so the pinned pip-audit is used) with the network on,
since it asks a vulnerability service. Three outcomes, never confused: ``passed`` (every package
was checked, none has a known vulnerability), ``vulnerable`` (exit 1: the packages and their
advisories), ``not checked`` (exit 3: the service could not answer for some packages, so this is
not a pass; ``pip-audit`` without ``--strict`` would have said "No known vulnerabilities").

One run, in JSON, read as ``--strict`` would: a package skipped is "not checked". Bounded: each
connection waits :data:`CONNECT_TIMEOUT` seconds, the whole audit ``TRAINYARD_AUDIT_TIMEOUT``
(default :data:`TIMEOUT`); a network that swallows requests costs that, then "not checked".
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

from cicd import proc
from cicd.errors import CommandError, ConfigError, run_cli

LOCKS = ("src/requirements/default.txt", "cicd/requirements.txt")  # what ships, and what runs CI
NOT_CHECKED = 3
CONNECT_TIMEOUT = 15  # seconds, pip-audit's own --timeout for each request
TIMEOUT = 240  # seconds for the whole audit (TRAINYARD_AUDIT_TIMEOUT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cicd.audit", description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, default=Path("reports/audit"), help="where audit.json goes")
    reports: Path = parser.parse_args(argv).reports
    if shutil.which("pip-audit") is None:
        raise ConfigError("pip-audit is not installed here; run the audit where it is pinned, with nox -s lint")
    try:
        reports.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(
            f"cannot create {reports} ({err.strerror}); pass --reports with a folder you can write"
        ) from None
    report = reports / "pip-audit.json"
    report.unlink(missing_ok=True)  # never an earlier run's
    cmd = ["pip-audit", "--disable-pip", "--require-hashes", "--progress-spinner", "off"]
    cmd += ["--timeout", str(CONNECT_TIMEOUT), "--format", "json", "--output", str(report)]
    for lock in LOCKS:
        cmd += ["-r", lock]
    limit = float(os.environ.get("TRAINYARD_AUDIT_TIMEOUT") or TIMEOUT)
    try:
        run = proc.run(cmd, timeout=limit, stream=False, what="pip-audit")
    except CommandError as err:  # it did not finish in time, or could not start
        return _verdict(reports, "not checked", f"pip-audit did not finish: {err}")
    try:
        found = json.loads(report.read_text())["dependencies"]
    except (OSError, ValueError, KeyError, TypeError):
        tail = " ".join(run.tail[-3:]) or f"exit {run.exit_code}"
        return _verdict(reports, "not checked", f"pip-audit did not finish: {tail}")
    vulnerable = [d for d in found if d.get("vulns")]
    if vulnerable:
        shown = ", ".join(
            f"{d['name']} {d.get('version', '')} ({', '.join(v['id'] for v in d['vulns'])})" for d in vulnerable
        )
        return _verdict(reports, "vulnerable", shown)
    skipped = [d for d in found if d.get("skip_reason")]
    if not skipped and run.ok and found:
        return _verdict(reports, "passed", f"every pinned package checked ({len(found)}): no known vulnerabilities")
    reason = skipped[0]["skip_reason"] if skipped else f"pip-audit exited {run.exit_code}"
    return _verdict(
        reports, "not checked", f"{len(skipped)} of {len(found)} packages could not be audited (first: {reason})"
    )


def _verdict(reports: Path, outcome: str, detail: str) -> int:
    (reports / "audit.json").write_text(json.dumps({"outcome": outcome, "detail": detail}, indent=2) + "\n")
    print(f"dependency audit: {outcome.upper()}: {detail}")
    return {"passed": 0, "vulnerable": 1}.get(outcome, NOT_CHECKED)


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
