from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest

from cicd.config import DEFAULT_PATH, load_config
from cicd.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
SPEC = load_config(DEFAULT_PATH, env={})  # the repository's own spec, whose lines the parse cases edit


def _normalised_ports(text: str) -> str:
    """The shipped spec with its ports set to 18080, 18081, 18082 in order, and no ``service_ports``
    or ``host`` (throwaway copies, the demo's and CI's, give ports and colours free values)."""
    ports = iter(range(18080, 18090))
    text = re.sub(r"(?m)^    (service_ports|host): .*\n", "", text)  # and a copy's hosts (the hosts test's)
    return re.sub(r"(?m)^    port: \d+$", lambda _: f"    port: {next(ports)}", text)


GOOD = _normalised_ports(DEFAULT_PATH.read_text())


def test_the_shipped_spec_loads() -> None:
    cfg = load_config(DEFAULT_PATH, env={})
    assert cfg.images.base.startswith("python:3.11-slim-bookworm@sha256:")  # pinned by digest
    assert cfg.registry is None
    assert cfg.branches.kind("develop") == "develop"
    assert cfg.branches.kind("main") == "release"
    assert cfg.branches.kind("feature/x") == "feature"
    assert cfg.branches.kind("whatever") == "feature"  # unknown kinds get the feature checks
    assert cfg.tags.release_tag("1.2.3") == "v1.2.3"
    assert set(cfg.environments) == {"integration", "staging", "production"}


def test_environment_overrides(tmp_path: Path) -> None:
    cfg = load_config(
        DEFAULT_PATH, env={"TRAINYARD_BASE_IMAGE": "local/py:3.11", "TRAINYARD_REGISTRY": "127.0.0.1:5000"}
    )
    assert cfg.images.base == "local/py:3.11"
    name = cfg.images.release.rsplit("/", 1)[-1]
    assert cfg.registry is not None and cfg.registry.repository(cfg.images.release) == f"127.0.0.1:5000/{name}"


def test_credentials_come_from_the_environment_only(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(DEFAULT_PATH, env={"TRAINYARD_REGISTRY": "127.0.0.1:5000"})
    assert cfg.registry is not None
    monkeypatch.delenv("TRAINYARD_REGISTRY_USERNAME", raising=False)
    monkeypatch.delenv("TRAINYARD_REGISTRY_PASSWORD", raising=False)
    assert cfg.registry.credentials() is None
    monkeypatch.setenv("TRAINYARD_REGISTRY_USERNAME", "u")
    with pytest.raises(ConfigError, match="set both or neither"):
        cfg.registry.credentials()
    monkeypatch.setenv("TRAINYARD_REGISTRY_PASSWORD", "canary-secret")
    assert cfg.registry.credentials() == ("u", "canary-secret")
    monkeypatch.setenv("TRAINYARD_REGISTRY_PASSWORD", "rotated")  # read at use, never kept in the config
    assert cfg.registry.credentials() == ("u", "rotated")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (f"project: {SPEC.project}", "project: ''", "project: must be a non-empty string"),
        ('  release: "v{version}"', '  release: "v"', "tags.release: must contain '{version}'"),
        ("  develop: develop", "  develop: [1]", "branches.develop: must be a non-empty string"),
        ("    port: 18081", "    port: 18080", "integration and staging share port 18080"),
        ("    branch: develop\n", "    branch: devlop\n", "integration.branch: 'devlop' is neither .*'develop'\\?"),
        ("  develop: [release, integration]", "  develop: [relase, i]", "flow.develop: 'relase' is no .*'release'\\?"),
        ("images:\n", "<<<<<<< before updating\nimages:\n=======\n>>>>>>> after updating\n", "merge conflict markers"),
        ("    port: 18082", "    port: 99999", "environments.production.port: must be an integer from 1 to 65535"),
        (
            "    target: docker\n    port: 18080",
            "    target: nomad\n    port: 18080",
            "environments.integration.target",
        ),
        ("images:\n", "imagez:\n", r"unknown key\(s\) \['imagez'\]"),
        ("  url: null ", "  url: http://x ", "registry.url: must be host\\[:port\\] without a scheme"),
        ("    tag: Staging", "    tag: Production", "two environments share a tag"),
        ("    tag: Staging", "    tag: deploy/x", "environments.staging.tag: must be a tag name"),
        ("    promote_from: staging", "    promote_from: nowhere", "production.promote_from: names no environment"),
        ("    tag: Staging\n", "    tag: Staging\n    promote_from: production\n", "promotions loop"),
        ("tags:\n", "tags:\n  staging: Staging\n", "tags.staging: moved to environments.staging.tag"),
        ("  develop: develop\n", "  feature: 'f/*'\n  develop: develop\n", "branches.feature: is no longer read"),
        ("  prerelease: rc ", "  prerelease: 'r-c' ", "release.prerelease: must be letters only"),
        ('  branch: "retrain/{date}"', '  branch: "retrain"', "retrain.branch: must be a branch name containing"),
        ("  settings: model/settings.yaml", "  settings: ../x.yaml", "retrain.settings: must be a path inside"),
        ("  retrain: [retrain]", "  retrain: [nox retrain]", "flow.retrain"),
        (f"import_name: {SPEC.import_name}", "import_name: 'x; rm -rf /'", "import_name: must be a dotted Python name"),
        ("    port: 18082", "    port: 18082\n    memory: lots", "environments.production.memory: must be a size"),
        ("    port: 18082", "    port: 18082\n    pids: 3", "environments.production.pids: must be an integer"),
        (
            "    port: 18082\n    proxy: true\n    health_path: /health",
            '    port: 18082\n    proxy: true\n    health_path: "/h\'; id"',
            "production.health_path: must be a URL path",
        ),
        ("    port: 18082", "    port: 18082\n    host: prod.example.com", "environments.production.host: must be"),
        ("    port: 18082", "    port: 18082\n    host: ftp://x", "environments.production.host: must be"),
        ("    port: 18082", "    port: 18082\n    url: prod.example.com", "production.url: must be an http"),
        ("    port: 18082", "    port: 18082\n    bind: everywhere", "production.bind: must be address:port"),
        ("    port: 18082", "    port: 18082\n    metrics_bind: 9101", "production.metrics_bind: must be address:port"),
        (
            "    port: 18080",
            "    port: 18080\n    metrics_bind: 127.0.0.1:9101",
            "integration.metrics_bind: is served by the proxy",
        ),
        (
            "    port: 18082",
            "    port: 18082\n    metrics_bind: 127.0.0.1:18081",
            "18081 is taken by an environment's port",
        ),
        ("    proxy: true", "    proxy: yes please", "environments.staging.proxy: must be true or false"),
        ("    port: 18082", "    port: 18082\n    service_ports: [1, 1]", "service_ports: must be two different ports"),
        ("    port: 18082", "    port: 18082\n    service_ports: [18081, 9]", "clash with each other or a port"),
        (
            "    port: 18082",
            "    port: 18082\n    settings: {env: {SERVICE_MAX_BODY_BYTES: '1m; allow all'}}",
            "production.settings.env.SERVICE_MAX_BODY_BYTES: must be a whole number of bytes",
        ),
    ],
)
def test_bad_specs_name_the_key_and_file(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in GOOD, old
    path = tmp_path / "pipeline.yaml"
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path, env={})
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [("- a list", "top level must be a mapping"), ("a: [", "not valid YAML at line"), ("", "top level must be")],
)
def test_unusable_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(path, env={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml", env={})


def test_unknown_environment_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown environment 'qa'.*integration, staging, production"):
        load_config(DEFAULT_PATH, env={}).environment("qa")


@pytest.mark.parametrize(
    ("value", "says"),
    [("{sample: 0}", "prediction_log.sample: must be a share"), ("{sample: 0.5, rows: 3}", "unknown key"),
     ("{max_rows: 0}", "prediction_log.max_rows: must be an integer"),
     ("{max_age_days: 0}", "prediction_log.max_age_days: must be a number of days")],
)  # fmt: skip
def test_a_bad_prediction_log_setting_is_refused(tmp_path: Path, value: str, says: str) -> None:
    spec = tmp_path / "pipeline.yaml"
    text = (
        (ROOT / "cicd/pipeline.yaml")
        .read_text()
        .replace("    prediction_log: {sample: 1.0, max_rows: 1000000}\n", f"    prediction_log: {value}\n", 1)
    )
    spec.write_text(text)
    with pytest.raises(ConfigError, match=says):
        load_config(spec, env={})


def test_where_an_environment_runs_and_is_reached() -> None:
    """``host`` (an address or a variable), ``url``, ``bind``, and the proxy's colours."""
    text = GOOD.replace(
        "    port: 18082\n",
        "    port: 18082\n    host: $PROD_HOST\n    url: https://ml.example.com/\n    bind: 0.0.0.0:443\n",
        1,
    )
    path = Path(tempfile.mkdtemp()) / "pipeline.yaml"
    path.write_text(text)
    production = load_config(path, env={}).environment("production")
    assert production.host == "$PROD_HOST" and production.remote and production.proxied
    assert production.url == "https://ml.example.com" and production.address == "0.0.0.0:443"
    assert production.colours == {"blue": 18182, "green": 18282}  # port + 100 and + 200 by default
    staging = load_config(path, env={}).environment("staging")
    assert staging.host is None and not staging.remote and staging.url == "http://127.0.0.1:18081"
    assert staging.metrics_bind is None and production.metrics_bind is None


def test_metrics_are_not_public_behind_the_proxy() -> None:
    """``/metrics`` through the public address is a 404; a ``metrics_bind`` serves it alone."""
    from cicd.deploy.proxy import render

    path = Path(tempfile.mkdtemp()) / "pipeline.yaml"
    path.write_text(GOOD.replace("    port: 18082\n", "    port: 18082\n    metrics_bind: 10.0.0.5:9101\n", 1))
    config = load_config(path, env={})
    public, private = render(config.environment("staging"), "blue"), render(config.environment("production"), "green")
    assert "location = /metrics { return 404; }" in public and "9101" not in public
    scraped = private.split("listen 10.0.0.5:9101;", 1)[1]
    assert (
        "location = /metrics {\n      proxy_pass http://service;" in scraped and "location / { return 404; }" in scraped
    )


def test_the_proxy_passes_on_the_bodies_the_service_takes(tmp_path: Path) -> None:
    """nginx's own limit (1 MiB) refused a 10,000-record batch the service accepts: the proxy takes
    the service's, SERVICE_MAX_BODY_BYTES from the environment's settings, else 6 MiB."""
    from cicd.deploy.proxy import render

    path = tmp_path / "pipeline.yaml"
    limit = "    port: 18082\n    settings: {env: {SERVICE_MAX_BODY_BYTES: 2000}}"
    path.write_text(GOOD.replace("    port: 18082", limit, 1))
    cfg = load_config(path, env={})
    staging, production = cfg.environment("staging"), cfg.environment("production")
    assert (staging.max_body_bytes, production.max_body_bytes) == (6 * 1024 * 1024, 2000)
    assert "  client_max_body_size 6291456;\n" in render(staging, "blue")
    assert "  client_max_body_size 2000;\n" in render(production, "green")
