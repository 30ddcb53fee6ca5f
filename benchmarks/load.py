"""Load on the prediction service with wrk: requests/s, p50 and p99 at 1, 8 and 32 concurrent
clients, single records and 1,000-record batches, with metrics and the prediction log on and off.

    python -m benchmarks.load --image trainyard/sample-ml:0.1.0 [--seconds 8] [--rounds 25]

(``nox -s bench`` runs it on the release it builds.) Both services run from the same release
image on 127.0.0.1, side by side, and are loaded one at a time: "off" with ``SERVICE_METRICS=0``
and no log, "on" with ``/metrics`` and the prediction log writing to a volume, as staging runs.
The overhead figure is the median, over ``--rounds`` short rounds (2 s a service: this machine's
speed drifts by tens of percent within a minute, so many short pairs beat a few long ones), of
each round's ratio of the "on" single-record p50 at one client to the "off" one; the target is
at most 5 %. A third service, the same as "off", runs in every round too: how far it lands from
"off" is the measurement's noise.
wrk is Debian's (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.common import prepare
from cicd.errors import CICDError, run_cli

CLIENTS = (1, 8, 32)
LOG_DIR = "/var/lib/predictions"
TARGET_OVERHEAD = 0.05
# wrk's Lua hooks: POST the body, and at the end one JSON line with the figures (latency in µs).
SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\n{"requests": %%d, "duration_us": %%d, "errors": %%d, "non2xx": %%d, "p50_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


def wrk_binary(also: str = "") -> str:
    """Where wrk is; a one-line error saying how to get it (and ``also``, another way out) if not."""
    binary = shutil.which("wrk")
    if binary is None:
        raise CICDError(f"wrk is not installed: apt-get install wrk (Debian's package){also}")
    return binary


def wrk(port: int, body: str, clients: int, seconds: int, workdir: Path) -> dict[str, float]:
    """One wrk run against ``/predict``: requests/s, p50 and p99 in ms; any failed request raises."""
    binary = wrk_binary()
    script = workdir / f"post-{uuid.uuid4().hex[:8]}.lua"
    script.write_text(SCRIPT % body)
    threads = min(clients, 2)
    done = subprocess.run(
        [binary, f"-t{threads}", f"-c{clients}", f"-d{seconds}s", "--timeout", "30s", "-s", str(script),
         f"http://127.0.0.1:{port}/predict"],
        capture_output=True, text=True, timeout=seconds + 60, check=False,
    )  # fmt: skip
    script.unlink()
    line = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    if done.returncode != 0 or not line.startswith("{"):
        raise RuntimeError(f"wrk failed (exit {done.returncode}): {done.stderr[-500:] or done.stdout[-500:]}")
    raw = json.loads(line)
    if raw["errors"] or raw["non2xx"]:
        raise RuntimeError(f"{raw['errors']} failed and {raw['non2xx']} non-2xx answers at {clients} clients: {raw}")
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "requests": raw["requests"],
    }


@contextmanager
def services(engine: Any, image: str) -> Iterator[dict[str, int]]:
    """The two services, "off" and "on", healthy; their ports. Removed afterwards, log volume too."""
    from cicd.http import free_port, wait_healthy

    run = uuid.uuid4().hex[:8]
    volume = f"trainyard-bench-{run}-predictions"
    started: list[str] = []
    settings = {
        "off": ({"SERVICE_METRICS": "0"}, {}),
        "on": ({"SERVICE_PREDICTION_LOG": f"sqlite:///{LOG_DIR}/predictions.sqlite"}, {volume: LOG_DIR}),
        "off again": ({"SERVICE_METRICS": "0"}, {}),  # the same as "off": how far two equals differ
    }
    ports = {mode: free_port() for mode in settings}
    try:
        for mode, (extra, volumes) in settings.items():
            env = {"SERVICE_HOST": "127.0.0.1", "SERVICE_PORT": str(ports[mode]), **extra}
            name = f"trainyard-bench-{mode.replace(' ', '-')}-{run}"
            cid = engine.containers.start_service(image, name, env, volumes=volumes)
            started.append(cid)
            if not wait_healthy(f"http://127.0.0.1:{ports[mode]}/health", 60):
                raise RuntimeError(f"the {mode} service never became healthy: {engine.containers.logs_tail(cid)}")
        yield ports
    finally:
        for cid in started:
            engine.containers.stop(cid)
        engine.containers.remove_volume(volume)


def measure(engine: Any, image: str, seconds: int = 8, rounds: int = 25) -> dict[str, Any]:
    from benchmarks.run import records

    bodies = {"single": json.dumps({"records": records(1)}), "batch": json.dumps({"records": records(1000, seed=1)})}
    figures: dict[str, Any] = {"seconds": seconds, "rounds": rounds, "runs": []}
    with tempfile.TemporaryDirectory(prefix="trainyard-load-") as tmp, services(engine, image) as ports:
        work = Path(tmp)
        for mode in ports:  # warm-up: first requests, allocations, the log's table
            wrk(ports[mode], bodies["single"], 2, 2, work)
        for payload, body in bodies.items():
            for clients in CLIENTS:
                for mode in ("off", "on"):
                    print(f"  {payload}, {clients} clients, {mode}", file=sys.stderr, flush=True)
                    result = wrk(ports[mode], body, clients, seconds, work)
                    figures["runs"].append({"payload": payload, "clients": clients, "mode": mode, **result})
        print(f"  single-record p50 at 1 client, {rounds} rounds of off / on / off again", file=sys.stderr)
        p50: dict[str, list[float]] = {mode: [] for mode in ports}
        order = list(ports)
        for n in range(rounds):  # rotated, so drift in the machine's speed hits each alike
            for mode in order[n % 3 :] + order[: n % 3]:
                p50[mode].append(wrk(ports[mode], bodies["single"], 1, 2, work)["p50_ms"])
    # Paired by round: the ratio of each round's "on" to its "off", then the median of those.
    added = statistics.median(on / off - 1 for on, off in zip(p50["on"], p50["off"], strict=True))
    noise = statistics.median(abs(again / off - 1) for again, off in zip(p50["off again"], p50["off"], strict=True))
    figures["overhead"] = {
        "p50_off_ms": statistics.median(p50["off"]),
        "p50_on_ms": statistics.median(p50["on"]),
        "added": added,
        "noise": noise,
        "samples": p50,
    }
    return figures


def table(figures: dict[str, Any]) -> str:
    lines = ["payload | clients | mode | requests/s | p50 ms | p99 ms", "---|---|---|---|---|---"]
    for r in figures["runs"]:
        lines.append(
            f"{r['payload']} | {r['clients']} | {r['mode']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f}"
        )
    o = figures["overhead"]
    verdict = "ok" if o["added"] <= TARGET_OVERHEAD else "MISSED"
    lines.append(
        f"\nmetrics + prediction log: single-record p50 {o['p50_on_ms']:.3f} ms vs {o['p50_off_ms']:.3f} ms off "
        f"at 1 client; added {o['added']:+.1%} (median of {figures['rounds']} paired rounds; two equal services "
        f"differ by {o['noise']:.1%}) (target ≤ {TARGET_OVERHEAD:.0%}): {verdict}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", required=True, help="a release image (the service)")
    parser.add_argument("--seconds", type=int, default=8, help="each wrk run (default 8)")
    parser.add_argument("--rounds", type=int, default=25, help="2-second rounds for the overhead figure (default 25)")
    parser.add_argument("--output", type=Path, default=Path("artifacts/benchmarks"), help="where load.json goes")
    args = parser.parse_args(argv)
    engine = prepare(args.output)
    try:
        wrk_binary()
        if not engine.images.exists(args.image):
            raise CICDError(f"image {args.image} does not exist here; build a release (nox -s release) first")
        figures = measure(engine, args.image, args.seconds, args.rounds)
    finally:
        engine.close()
    (args.output / "load.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(table(figures))
    print(f"\nfigures in {args.output / 'load.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_cli(main))
