"""The reverse proxy in front of a proxied environment: nginx, one container per environment.

nginx, because a switch is a graceful reload: the master starts workers with the new upstream
and lets the old ones finish what they hold, on a listening socket that never closes, so a
switch drops no request. It runs from the official image (``images.proxy``) with nothing of ours
installed on the host: its config is written through ``docker exec`` onto a named volume of the
environment's, so a proxy the engine restarts (after a crash or a reboot) still sends to the
colour the last switch chose. The config names that colour, which is what ``status`` and the
next deploy read.
"""

from __future__ import annotations

import logging
import os
import re
import time

from cicd.config import Environment, PipelineConfig
from cicd.errors import DeployError
from cicd.images import Container, Engine
from cicd.images.hosts import secret_bytes, variable

log = logging.getLogger(__name__)
LABEL = "io.trainyard"
CONF_DIR = "/etc/trainyard"  # a named volume of the environment's: the config outlives the container
CONF = f"{CONF_DIR}/nginx.conf"
CERT, KEY = f"{CONF_DIR}/tls.crt", f"{CONF_DIR}/tls.key"  # with tls: the certificate (chain) and its key
PID = "/tmp/trainyard/nginx.pid"  # noqa: S108  # nosec B108 - on the container's tmpfs
_WRITE = 'mkdir -p /tmp/trainyard && printf "%s" "$1" > "$2.new" && nginx -e stderr -t -q -c "$2.new"'
# A restart (the engine's, after a crash or a reboot) keeps the config the last switch wrote.
_START = (
    'mkdir -p /tmp/trainyard && { [ -s "$2" ] || printf "%s" "$1" > "$2"; } '
    '&& exec nginx -e stderr -c "$2" -g "daemon off;"'
)
_COLOUR = re.compile(r"# trainyard: colour=(\w+) port=(\d+)")
# Every process's id and command line, from /proc (the official image has no ps).
_PROCESSES = 'for d in /proc/[0-9]*; do printf "%s %s\\n" "${d#/proc/}" "$(tr "\\0" " " < "$d/cmdline")"; done'
DRAIN = 65.0  # the longest the old workers may take to finish what they hold (proxy_read_timeout + 5 s)


def render(env: Environment, colour: str) -> str:
    """nginx's whole config: ``bind`` → the colour's loopback port, request ids and forwarded-for
    set, and the service's own body limit (:attr:`Environment.max_body_bytes`). ``/metrics`` is
    not for the public: 404 there, and served on ``metrics_bind`` alone when the spec names one
    (the address a scraper reaches, on a private interface)."""
    port = env.colours[colour]
    metrics = (
        f"""
  server {{
    listen {env.metrics_bind};
    location = /metrics {{
      proxy_pass http://service;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
    location / {{ return 404; }}
  }}"""
        if env.metrics_bind
        else ""
    )
    tls = (
        f"\n    ssl_certificate {CERT};\n    ssl_certificate_key {KEY};\n    ssl_protocols TLSv1.2 TLSv1.3;"
        if env.tls
        else ""
    )
    return f"""# trainyard: colour={colour} port={port}
worker_processes 1;
pid {PID};
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_max_body_size {env.max_body_bytes};
  client_body_temp_path /tmp/trainyard/body;
  proxy_temp_path /tmp/trainyard/proxy;
  fastcgi_temp_path /tmp/trainyard/fastcgi;
  uwsgi_temp_path /tmp/trainyard/uwsgi;
  scgi_temp_path /tmp/trainyard/scgi;
  upstream service {{ server 127.0.0.1:{port}; keepalive 16; }}
  server {{
    listen {env.address}{" ssl" if env.tls else ""};{tls}
    location = /metrics {{ return 404; }}
    location / {{
      proxy_pass http://service;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 60s;
    }}
  }}{metrics}
}}
"""


class Proxy:
    """One environment's proxy container on its host."""

    def __init__(self, config: PipelineConfig, env: Environment, engine: Engine, labels: dict[str, str]) -> None:
        self.config, self.env, self.engine = config, env, engine
        self.labels = {**labels, f"{LABEL}.role": "proxy"}

    @property
    def name(self) -> str:
        return f"trainyard-{self.config.project}-{self.env.name}-{self.env.port}-proxy"

    @property
    def volume(self) -> str:
        return f"{self.name}-conf"

    def container(self) -> Container | None:
        found = self.engine.containers.find(self.labels)
        return found[0] if found else None

    def colour(self) -> str | None:
        """The colour the running proxy sends requests to, or None (no proxy, or not running)."""
        current = self.container()
        if current is None or not current.running:
            return None
        code, text = self.engine.containers.execute(current.id, ["cat", CONF], reads_only=True)
        match = _COLOUR.search(text) if code == 0 else None
        return match.group(1) if match else None

    def tls_files(self) -> dict[str, bytes]:
        """With ``tls``: the certificate and key (``TRAINYARD_<ENV>_PROXY_CERT``, ``…_PROXY_KEY``:
        a path or the PEM text), checked before anything changes; else nothing."""
        if not self.env.tls:
            return {}
        return {
            CERT: secret_bytes(os.environ, variable(self.env.name, "PROXY_CERT"), "the certificate (chain) in PEM"),
            KEY: secret_bytes(os.environ, variable(self.env.name, "PROXY_KEY"), "the certificate's private key in PEM"),
        }

    def send_to(self, colour: str) -> None:
        """Send every new request to ``colour``: start the proxy if it is not running, else reload it
        (with ``tls``, the certificate and key are written again first: a deploy renews them)."""
        conf = render(self.env, colour)
        files = self.tls_files()
        current = self.container()
        if current is not None and not current.running:
            self.engine.containers.remove(current.id)  # a stopped proxy holds nothing: start a fresh one
            current = None
        if current is None:
            cid = self.engine.containers.start_proxy(
                self.config.images.proxy, self.name, ["sh", "-c", _START, "sh", conf, CONF], self.labels,
                {self.volume: CONF_DIR}, files,
            )  # fmt: skip
            if cid and not self._answers(cid):
                tail = self.engine.containers.logs_tail(cid)
                self.engine.containers.remove(cid)
                raise DeployError(
                    f"the proxy of {self.env.name} did not start on {self.env.address}: "
                    + (tail[-1] if tail else "no output")
                    + f"; is the address free on {self.engine.where}?"
                )
            if not cid:
                return
            self.engine.containers.keep_running(cid)  # it serves: it comes back after a reboot
            if self.engine.containers.execute(cid, ["cat", CONF], reads_only=True)[1] == conf:
                return
            current = self.container()  # it kept an earlier config from its volume: reload it with ours
            assert current is not None
        for path, data in files.items():
            self.engine.containers.put_file(current.id, path, data, mode=0o600)
        old = self._workers(current.id)
        reload = f'{_WRITE} && mv "$2.new" "$2" && nginx -e stderr -s reload -c "$2"'
        code, output = self.engine.containers.execute(current.id, ["sh", "-c", reload, "sh", conf, CONF])
        if code != 0:
            raise DeployError(f"the proxy of {self.env.name} refused its new config: {output.strip()[-300:]}")
        self._drained(current.id, old)

    def _workers(self, cid: str) -> set[str]:
        """The proxy's worker processes now (their ids)."""
        _, text = self.engine.containers.execute(cid, ["sh", "-c", _PROCESSES], reads_only=True)
        return {line.split(" ", 1)[0] for line in text.splitlines() if "nginx: worker process" in line}

    def _drained(self, cid: str, old: set[str]) -> None:
        """Wait until the workers that ran before the reload are gone.

        A reload only signals the master; until it has started new workers and the old ones have
        closed the listening socket and finished what they hold, a request may still reach the old
        upstream. Only after that may the old colour stop.
        """
        start = time.monotonic()
        while old & self._workers(cid):
            if time.monotonic() - start > DRAIN:
                log.warning("the proxy of %s: old workers still busy after %.0f s; going on", self.env.name, DRAIN)
                return
            time.sleep(0.1)
        log.info("proxy of %s reloaded; old workers gone after %.2f s", self.env.name, time.monotonic() - start)

    def _answers(self, cid: str) -> bool:
        """The new proxy's master runs and wrote its pid (it has bound the address) within 10 s."""
        for _ in range(50):
            if not self.engine.containers.running(cid):
                return False
            code, _ = self.engine.containers.execute(cid, ["test", "-s", PID], reads_only=True)
            if code == 0:
                return True
            time.sleep(0.2)
        return False

    def remove(self) -> None:
        """Take the proxy away, with the volume that holds its config."""
        current = self.container()
        if current is not None:
            self.engine.containers.remove(current.id)
        self.engine.containers.remove_volume(self.volume)
