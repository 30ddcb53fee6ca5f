"""Container health probe: exits 0 when the service's /health answers 200, else 1.

The toolkit's, not the project's: the release image runs it as ``python
/opt/trainyard/healthcheck.py [--port PORT]`` (default: ``SERVICE_PORT``, else 8000), so a
project's only duty is the contract's ``GET /health``. Standard library only, so it starts in
milliseconds. Docker reads 0 as healthy and 1 as unhealthy, so a service that does not answer is
exit 1 with a line saying so; a bad argument is exit 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import urllib.request


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python /opt/trainyard/healthcheck.py", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("SERVICE_PORT", "8000")))
    args = parser.parse_args(argv)
    url = f"http://127.0.0.1:{args.port}/health"
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:  # nosec B310
            return 0 if resp.status == 200 else 1
    except OSError as err:
        print(
            f"unhealthy: nothing healthy answers at {url} ({err}); start the service or check --port", file=sys.stderr
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
