"""``cicd/pipeline.yaml`` → typed, frozen settings, validated with errors naming key and file.

Environment variables may override the base image (``TRAINYARD_BASE_IMAGE``), the proxy's image
(``TRAINYARD_PROXY_IMAGE``) and the registry (``TRAINYARD_REGISTRY``).
Credentials are read from the environment only when needed and are
never part of these objects' ``repr``.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cicd.errors import ConfigError, RegistryError
from cicd.plan import ROWS, parse_steps

DEFAULT_PATH = Path(__file__).resolve().parent / "pipeline.yaml"
ENV_BASE_IMAGE = "TRAINYARD_BASE_IMAGE"
ENV_REGISTRY = "TRAINYARD_REGISTRY"
ENV_PROXY_IMAGE = "TRAINYARD_PROXY_IMAGE"


@dataclass(frozen=True)
class Images:
    base: str
    build: str
    release: str
    proxy: str = "nginx:1.26-bookworm"  # the reverse proxy in front of proxied environments


@dataclass(frozen=True)
class Registry:
    url: str
    namespace: str = ""
    username_env: str = "TRAINYARD_REGISTRY_USERNAME"
    password_env: str = "TRAINYARD_REGISTRY_PASSWORD"  # noqa: S105 - the variable's name, not a secret

    def repository(self, name: str) -> str:
        parts = [self.url.rstrip("/"), self.namespace.strip("/"), name.split("/")[-1]]
        return "/".join(p for p in parts if p)

    def checked_reference(self, reference: str, image: str) -> str:
        """``reference`` when it is ``<this registry's repository for image>@sha256:<digest>``.

        Records name what to pull; this is what keeps a record from sending the registry
        credentials to another host or running another repository's image.
        """
        expected = self.repository(image)
        if not re.fullmatch(re.escape(expected) + r"@sha256:[0-9a-f]{64}", reference):
            raise RegistryError(
                f"refusing to pull {reference!r}: a record may only name {expected}@sha256:<digest> "
                "(registry.url, registry.namespace and images.release in the spec); the registry's "
                "credentials are sent to no other host"
            )
        return reference

    def credentials(self) -> tuple[str, str] | None:
        """``(username, password)`` from the environment, or None when unset."""
        user, password = os.environ.get(self.username_env), os.environ.get(self.password_env)
        if user and password:
            return user, password
        if user or password:
            raise ConfigError(f"only one of {self.username_env} and {self.password_env} is set; set both or neither")
        return None


@dataclass(frozen=True)
class Branches:
    """Branch rules: ``develop`` and the ``release`` branches; every other branch is a feature branch."""

    develop: str
    release: tuple[str, ...]

    def kind(self, branch: str) -> str:
        """``release``, ``develop`` or ``feature`` (anything else counts as a feature branch)."""
        if branch in self.release:
            return "release"
        if branch == self.develop:
            return "develop"
        return "feature"


@dataclass(frozen=True)
class Tags:
    release: str

    def release_tag(self, version: str) -> str:
        return self.release.format(version=version)


@dataclass(frozen=True)
class SigningSettings:
    """Records are signed tags, verified against ``allowed_signers`` (see :mod:`cicd.signing`)."""

    required: bool = True  # False: the explicit choice of unsigned, unverified records (local use only)
    allowed_signers: str = ".trainyard/allowed_signers"
    key_env: str = "TRAINYARD_SIGNING_KEY"


@dataclass(frozen=True)
class ReleaseSettings:
    prerelease: str = "rc"
    initial_version: str = "0.1.0"
    train_timeout: int = 900


@dataclass(frozen=True)
class RetrainSettings:
    """Where retraining reads the model's settings and which branch an accepted challenger goes to."""

    settings: str = "model/settings.yaml"  # relative to the repository root
    branch: str = "retrain/{date}"
    timeout: int = 900

    def branch_name(self, date: str) -> str:
        return self.branch.format(date=date)


MAX_BODY_SETTING = "SERVICE_MAX_BODY_BYTES"
DEFAULT_MAX_BODY_BYTES = 6 * 1024 * 1024  # the sample service's default (src/sample_ml/service/app.py)


def _settings_env(settings: Mapping[str, Any]) -> Mapping[str, Any]:
    env = settings.get("env", {})
    return env if isinstance(env, Mapping) else {}


@dataclass(frozen=True)
class PredictionLogSettings:
    """``environments.<name>.prediction_log``: the service logs (a share of) its predictions to
    a SQLite file on a named volume of the environment's host, which outlives redeploys."""

    sample: float = 1.0  # the share of requests logged
    max_rows: int = 1_000_000  # the newest rows kept
    max_age_days: float = 90.0  # older rows are deleted too


@dataclass(frozen=True)
class Environment:
    name: str
    branches: tuple[str, ...]
    target: str = "docker"
    port: int = 8000
    health_path: str = "/health"
    health_timeout: float = 60.0
    settings: Mapping[str, Any] = field(default_factory=dict)
    tag: str | None = None  # the moving tag on the commit it runs (``Staging``), if any
    promote_from: str | None = None  # the environment ``promote`` takes its release from
    memory: str = "1g"  # the service container's memory limit (docker's form: 512m, 2g)
    pids: int = 256  # the service container's process limit
    prediction_log: PredictionLogSettings | None = None  # off unless the spec asks for it
    host: str | None = None  # its engine (``unix://``, ``ssh://``, ``tcp://``, ``$VAR``); None: the deployer's
    public_url: str | None = None  # ``environments.<name>.url``: where users reach it
    bind: str | None = None  # the proxy's public address (``host:port``); default ``127.0.0.1:<port>``
    metrics_bind: str | None = None  # where the proxy serves /metrics to a scraper (the public address: 404)
    proxy: bool = False  # a reverse proxy in front, blue/green behind it (always on a remote host)
    service_ports: tuple[int, int] | None = None  # the two colours' loopback ports behind the proxy
    tls: bool = False  # the proxy terminates TLS (certificate and key from TRAINYARD_<ENV>_PROXY_CERT/_KEY)

    @property
    def service_env(self) -> Mapping[str, Any]:
        """``settings.env``: the service's own settings (none when it is missing or no mapping)."""
        return _settings_env(self.settings)

    @property
    def max_body_bytes(self) -> int:
        """The largest request body the proxy passes on: the service's own limit,
        ``settings.env.SERVICE_MAX_BODY_BYTES`` (checked when the spec is read), else the sample
        service's default, 6 MiB (nginx's own default, 1 MiB, refused batches the service takes)."""
        return int(self.service_env.get(MAX_BODY_SETTING, DEFAULT_MAX_BODY_BYTES))

    @property
    def url(self) -> str:
        """Where acceptance, status and the health checks reach it: ``url``, else the proxy's or port's address."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"{'https' if self.tls else 'http'}://{self.address}"

    @property
    def address(self) -> str:
        """``host:port`` the environment serves on (the proxy's ``bind``, else 127.0.0.1 and the port)."""
        return self.bind or f"127.0.0.1:{self.port}"

    @property
    def remote(self) -> bool:
        """Runs on another engine than the deployer's (a host named in the spec that is not a unix socket)."""
        return self.host is not None and not self.host.startswith("unix://")

    @property
    def proxied(self) -> bool:
        return self.target == "docker" and (self.proxy or self.remote or self.tls)

    @property
    def colours(self) -> dict[str, int]:
        """The loopback port of each colour behind the proxy (``service_ports``, else port+100 and port+200)."""
        blue, green = self.service_ports or (self.port + 100, self.port + 200)
        return {"blue": blue, "green": green}


@dataclass(frozen=True)
class PipelineConfig:
    path: Path
    root: Path
    project: str
    package: str
    import_name: str
    images: Images
    registry: Registry | None
    branches: Branches
    tags: Tags
    release: ReleaseSettings
    test_timeout: int
    retrain: RetrainSettings
    environments: Mapping[str, Environment]
    flow: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    signing: SigningSettings = field(default_factory=SigningSettings)

    def environment(self, name: str) -> Environment:
        try:
            return self.environments[name]
        except KeyError:
            known = ", ".join(self.environments) or "none"
            raise ConfigError(f"unknown environment {name!r}; {self.path} defines: {known}") from None


class _Reader:
    """Typed access to the parsed YAML with errors that name the file and the dotted key."""

    def __init__(self, path: Path, data: Mapping[str, Any]) -> None:
        self.path, self.data = path, data

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {message}")

    def section(self, key: str, required: bool = True) -> Mapping[str, Any]:
        value = self.get(key, required=required)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.fail(key, f"must be a mapping, got {type(value).__name__}")
        return value

    def get(self, dotted: str, required: bool = True, default: Any = None) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                if required:
                    raise self.fail(dotted, "is required")
                return default
            node = node[part]
        return node

    def string(self, dotted: str, required: bool = True, default: str | None = None) -> str:
        value = self.get(dotted, required=required, default=default)
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(dotted, f"must be a non-empty string, got {value!r}")
        return value

    def integer(self, dotted: str, default: int, lo: int, hi: int) -> int:
        value = self.get(dotted, required=False, default=default)
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise self.fail(dotted, f"must be an integer from {lo} to {hi}, got {value!r}")
        return value

    def strings(self, dotted: str) -> tuple[str, ...]:
        value = self.get(dotted)
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
            raise self.fail(dotted, f"must be a branch name or a list of them, got {value!r}")
        return tuple(values)

    def checked(self, key: str, allowed: set[str], required: bool = True) -> Mapping[str, Any]:
        """The section ``key`` (empty when optional and absent), refused if it has keys not in ``allowed``."""
        section = self.section(key, required=required)
        self.unknown_keys(key, section, allowed)
        return section

    def unknown_keys(self, dotted: str, section: Mapping[str, Any], allowed: set[str]) -> None:
        extra = sorted(set(section) - allowed)
        if extra:
            raise self.fail(dotted, f"unknown key(s) {extra}; allowed: {sorted(allowed)}")


_TOP = {
    "project",
    "package",
    "import_name",
    "images",
    "registry",
    "branches",
    "tags",
    "release",
    "tests",
    "retrain",
    "environments",
    "flow",
    "signing",
}
_ENV_KEYS = {
    "branch",
    "target",
    "port",
    "health_path",
    "health_timeout",
    "settings",
    "tag",
    "promote_from",
    "memory",
    "pids",
    "prediction_log",
    "host",
    "url",
    "bind",
    "metrics_bind",
    "proxy",
    "service_ports",
    "tls",
}
TARGETS = ("docker", "kubernetes")


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> PipelineConfig:
    """Load and validate the spec; ``env`` defaults to ``os.environ`` (for the overrides)."""
    env = os.environ if env is None else env
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"pipeline spec {path} does not exist; run from the project's folder or pass --config FILE"
        ) from None
    _no_conflict_markers(path, text)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: the top level must be a mapping of settings, got {type(raw).__name__}")
    r = _Reader(path, raw)
    r.unknown_keys("(top level)", raw, _TOP)
    import_name = r.string("import_name")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", import_name):
        raise r.fail("import_name", f"must be a dotted Python name (it reaches commands), got {import_name!r}")

    r.checked("images", {"base", "build", "release", "proxy"})
    images = Images(
        base=env.get(ENV_BASE_IMAGE) or _image_reference(r, "images.base"),
        build=r.string("images.build"),
        release=r.string("images.release"),
        proxy=env.get(ENV_PROXY_IMAGE)
        or (_image_reference(r, "images.proxy") if r.get("images.proxy", required=False) else Images.proxy),
    )

    registry_raw = r.checked("registry", {"url", "namespace", "username_env", "password_env"}, required=False)
    registry_url = env.get(ENV_REGISTRY) or registry_raw.get("url")
    registry = None
    if registry_url:
        if not isinstance(registry_url, str) or "://" in registry_url or " " in registry_url:
            raise r.fail("registry.url", f"must be host[:port] without a scheme, got {registry_url!r}")
        registry = Registry(
            url=registry_url,
            namespace=str(registry_raw.get("namespace") or ""),
            username_env=r.string("registry.username_env", False, "TRAINYARD_REGISTRY_USERNAME"),
            password_env=r.string("registry.password_env", False, "TRAINYARD_REGISTRY_PASSWORD"),
        )

    branches_raw = r.section("branches")
    if "feature" in branches_raw:
        raise r.fail(
            "branches.feature",
            "is no longer read (every branch that is not develop or a release branch "
            "is a feature branch); delete the line",
        )
    r.unknown_keys("branches", branches_raw, {"develop", "release"})
    branches = Branches(develop=r.string("branches.develop"), release=r.strings("branches.release"))
    tags_raw = r.section("tags")
    for moved in ("staging", "production"):
        if moved in tags_raw:
            raise r.fail(f"tags.{moved}", f"moved to environments.{moved}.tag (each environment names its own tag)")
    r.unknown_keys("tags", tags_raw, {"release"})
    tags = Tags(release=r.string("tags.release"))
    if "{version}" not in tags.release:
        raise r.fail("tags.release", f"must contain '{{version}}', got {tags.release!r}")

    r.checked("release", {"prerelease", "initial_version", "train_timeout"}, required=False)
    release = ReleaseSettings(
        prerelease=r.string("release.prerelease", False, "rc"),
        initial_version=r.string("release.initial_version", False, "0.1.0"),
        train_timeout=r.integer("release.train_timeout", 900, 10, 86400),
    )
    if not release.prerelease.isalpha():
        raise r.fail("release.prerelease", f"must be letters only (e.g. rc), got {release.prerelease!r}")

    r.checked("retrain", {"settings", "branch", "timeout"}, required=False)
    retrain = RetrainSettings(
        settings=r.string("retrain.settings", False, "model/settings.yaml"),
        branch=r.string("retrain.branch", False, "retrain/{date}"),
        timeout=r.integer("retrain.timeout", 900, 10, 86400),
    )
    if "{date}" not in retrain.branch or retrain.branch.startswith("/") or " " in retrain.branch:
        raise r.fail("retrain.branch", f"must be a branch name containing '{{date}}', got {retrain.branch!r}")
    if Path(retrain.settings).is_absolute() or ".." in Path(retrain.settings).parts:
        raise r.fail("retrain.settings", f"must be a path inside the repository, got {retrain.settings!r}")

    environments: dict[str, Environment] = {}
    for name, spec in r.section("environments", required=False).items():
        key = f"environments.{name}"
        if not isinstance(spec, Mapping):
            raise r.fail(key, "must be a mapping")
        r.unknown_keys(key, spec, _ENV_KEYS)
        target = r.string(f"{key}.target", False, "docker")
        if target not in TARGETS:
            raise r.fail(f"{key}.target", f"must be one of {list(TARGETS)}, got {target!r}")
        timeout = r.get(f"{key}.health_timeout", required=False, default=60)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise r.fail(f"{key}.health_timeout", f"must be a positive number of seconds, got {timeout!r}")
        health = r.string(f"{key}.health_path", False, "/health")
        if not re.fullmatch(r"/[A-Za-z0-9._~!$&()*+,;=:@%/-]*", health):
            raise r.fail(
                f"{key}.health_path", f"must be a URL path such as /health (letters, digits, /._-~), got {health!r}"
            )
        settings = r.get(f"{key}.settings", required=False, default={}) or {}
        if not isinstance(settings, Mapping):
            raise r.fail(f"{key}.settings", "must be a mapping")
        limit = _settings_env(settings).get(MAX_BODY_SETTING)
        if limit is not None and not re.fullmatch(r"[1-9][0-9]{0,11}", str(limit)):
            raise r.fail(
                f"{key}.settings.env.{MAX_BODY_SETTING}",
                f"must be a whole number of bytes (the proxy's body limit follows it), got {limit!r}",
            )
        environments[str(name)] = Environment(
            name=str(name),
            branches=r.strings(f"{key}.branch"),
            target=target,
            port=r.integer(f"{key}.port", 8000, 1, 65535),
            health_path=health,
            health_timeout=float(timeout),
            settings=dict(settings),
            tag=r.string(f"{key}.tag", False, None) if spec.get("tag") is not None else None,
            promote_from=r.string(f"{key}.promote_from", False, None) if spec.get("promote_from") is not None else None,
            memory=_memory(r, f"{key}.memory"),
            pids=r.integer(f"{key}.pids", 256, 16, 65536),
            prediction_log=_prediction_log(r, f"{key}.prediction_log") if spec.get("prediction_log") else None,
            **_placement(r, key, spec),
        )
    _check_environments(r, environments, branches)

    return PipelineConfig(
        path=path,
        root=path.resolve().parent.parent,
        project=r.string("project"),
        package=r.string("package"),
        import_name=import_name,
        images=images,
        registry=registry,
        branches=branches,
        tags=tags,
        release=release,
        test_timeout=r.integer("tests.timeout", 1800, 10, 86400),
        retrain=retrain,
        environments=environments,
        flow=_flow(r),
        signing=_signing(r),
    )


def _no_conflict_markers(path: Path, text: str) -> None:
    """A merge (``copier update``, ``git merge``) that left ``<<<<<<<`` / ``>>>>>>>`` lines in the spec."""
    lines = text.splitlines()
    found = [n for n, line in enumerate(lines, 1) if re.match(r"(<{7}|>{7})( |$)", line)]
    if found and any(lines[n - 1].startswith("<" * 7) for n in found):
        shown = ", ".join(str(n) for n in found[:6])
        raise ConfigError(
            f"{path}: merge conflict markers at lines {shown} (a `copier update` or a git merge left them): "
            "keep the side you want in each conflict, delete the <<<<<<< ======= >>>>>>> lines, and run again"
        )


def _signing(r: _Reader) -> SigningSettings:
    r.checked("signing", {"required", "allowed_signers", "key_env"}, required=False)
    required = r.get("signing.required", required=False, default=True)
    if not isinstance(required, bool):
        raise r.fail("signing.required", f"must be true or false, got {required!r}")
    return SigningSettings(
        required=required,
        allowed_signers=r.string("signing.allowed_signers", False, ".trainyard/allowed_signers"),
        key_env=r.string("signing.key_env", False, "TRAINYARD_SIGNING_KEY"),
    )


def _image_reference(r: _Reader, key: str) -> str:
    """An image reference; when it carries a digest (``name:tag@sha256:…``), a well-formed one."""
    value = r.string(key)
    if "@" in value and not re.fullmatch(r"[^@\s]+@sha256:[0-9a-f]{64}", value):
        raise r.fail(key, f"a digest must be @sha256: and 64 hex digits, got {value!r}")
    return value


def _prediction_log(r: _Reader, key: str) -> PredictionLogSettings:
    section = r.checked(key, {"sample", "max_rows", "max_age_days"})
    sample = section.get("sample", 1.0)
    if isinstance(sample, bool) or not isinstance(sample, int | float) or not 0 < sample <= 1:
        raise r.fail(f"{key}.sample", f"must be a share of requests above 0 and at most 1, got {sample!r}")
    age = section.get("max_age_days", 90)
    if isinstance(age, bool) or not isinstance(age, int | float) or not 0 < age <= 36500:
        raise r.fail(f"{key}.max_age_days", f"must be a number of days above 0 and at most 36500, got {age!r}")
    return PredictionLogSettings(
        sample=float(sample), max_rows=r.integer(f"{key}.max_rows", 1_000_000, 1, 10**12), max_age_days=float(age)
    )


def _placement(r: _Reader, key: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Where the environment runs and is reached: ``host``, ``url``, ``bind``, ``metrics_bind``, ``proxy``,
    ``service_ports``, ``tls``."""
    out: dict[str, Any] = {}
    host = spec.get("host")
    if host is not None:
        if not isinstance(host, str) or not re.fullmatch(r"(unix|ssh|tcp)://\S+|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", host):
            raise r.fail(
                f"{key}.host",
                "must be unix:///path, ssh://user@host[:port], tcp://host:2376 or $VARIABLE (read when deploying), "
                f"got {host!r}",
            )
        out["host"] = host
    url = spec.get("url")
    if url is not None:
        if not isinstance(url, str) or not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            raise r.fail(f"{key}.url", f"must be an http:// or https:// address, got {url!r}")
        out["public_url"] = url
    for field_name, example in (
        ("bind", "127.0.0.1:8080, 0.0.0.0:80"),
        ("metrics_bind", "127.0.0.1:9101, 10.0.0.5:9101"),
    ):
        address = spec.get(field_name)
        if address is not None:
            if not isinstance(address, str) or not re.fullmatch(
                r"([0-9A-Za-z.\-]+|\[[0-9a-fA-F:]+\]):[0-9]{1,5}", address
            ):
                raise r.fail(f"{key}.{field_name}", f"must be address:port ({example}), got {address!r}")
            out[field_name] = address
    proxy = spec.get("proxy", False)
    if not isinstance(proxy, bool):
        raise r.fail(f"{key}.proxy", f"must be true or false, got {proxy!r}")
    out["proxy"] = proxy
    tls = spec.get("tls", False)
    if not isinstance(tls, bool):
        raise r.fail(f"{key}.tls", f"must be true or false, got {tls!r}")
    out["tls"] = tls
    ports = spec.get("service_ports")
    if ports is not None:
        if (
            not isinstance(ports, list)
            or len(ports) != 2
            or not all(isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535 for p in ports)
            or ports[0] == ports[1]
        ):
            raise r.fail(f"{key}.service_ports", f"must be two different ports, [blue, green], got {ports!r}")
        out["service_ports"] = (ports[0], ports[1])
    return out


def _memory(r: _Reader, key: str) -> str:
    value = r.get(key, required=False, default="1g")
    if not isinstance(value, str) or not re.fullmatch(r"[1-9][0-9]*[kmg]", value):
        raise r.fail(key, f"must be a size like 512m or 2g, got {value!r}")
    return value


def _check_environments(r: _Reader, environments: Mapping[str, Environment], branches: Branches) -> None:
    """Ports and tags unique; each environment's branches are the develop or a release branch (the
    flow deploys no other); ``promote_from`` names another environment and never loops."""
    known = (branches.develop, *branches.release)
    for env in environments.values():
        for branch in env.branches:
            if branch not in known:
                near = difflib.get_close_matches(branch, known, n=1)
                raise r.fail(
                    f"environments.{env.name}.branch",
                    f"{branch!r} is neither branches.develop ({branches.develop!r}) nor a release branch "
                    f"({', '.join(branches.release)}), so the flow never deploys it"
                    + (f"; did you mean {near[0]!r}?" if near else ""),
                )
    ports = [e.port for e in environments.values() if e.target == "docker"]
    shared = sorted({p for p in ports if ports.count(p) > 1})
    if shared:
        names = [e.name for e in environments.values() if e.target == "docker" and e.port == shared[0]]
        raise r.fail(
            "environments",
            f"{' and '.join(names)} share port {shared[0]}; give each environment a port of its own "
            f"(environments.{names[-1]}.port)",
        )
    behind = [p for e in environments.values() if e.proxied for p in e.colours.values()]
    taken = sorted(set(ports) & set(behind)) or sorted({p for p in behind if behind.count(p) > 1})
    if taken or any(p > 65535 for p in behind):
        raise r.fail(
            "environments",
            f"the proxied environments' service ports {behind} clash with each other or a port ({taken}), or "
            "pass 65535; set environments.<name>.service_ports: [blue, green] to free ones",
        )
    for env in environments.values():
        if env.metrics_bind is not None and not env.proxied:
            raise r.fail(
                f"environments.{env.name}.metrics_bind",
                "is served by the proxy; set proxy: true (without one the service's own port answers /metrics)",
            )
    scraped = {e.name: e.metrics_bind for e in environments.values() if e.metrics_bind}
    addresses = list(scraped.values())
    for name, address in scraped.items():
        port = int(address.rsplit(":", 1)[1])
        if port in ports or port in behind or addresses.count(address) > 1:
            raise r.fail(
                f"environments.{name}.metrics_bind",
                f"{address} is taken by an environment's port, a colour's or another metrics_bind; give it a free one",
            )
    moving = [e.tag for e in environments.values() if e.tag]
    if len(moving) != len(set(moving)):
        raise r.fail("environments", f"two environments share a tag: {moving}")
    for env in environments.values():
        key = f"environments.{env.name}"
        if env.tag is not None and (
            not env.tag.strip() or " " in env.tag or env.tag.startswith(("deploy/", "accepted/"))
        ):
            raise r.fail(
                f"{key}.tag", f"must be a tag name without spaces, not under deploy/ or accepted/, got {env.tag!r}"
            )
        seen, source = [env.name], env.promote_from
        while source is not None:
            if source not in environments:
                raise r.fail(f"{key}.promote_from", f"names no environment; defined: {', '.join(environments)}")
            if source in seen:
                raise r.fail(f"{key}.promote_from", f"promotions loop: {' → '.join([*seen, source])}")
            seen.append(source)
            source = environments[source].promote_from


def _flow(r: _Reader) -> dict[str, tuple[str, ...]]:
    raw = r.section("flow", required=False)
    r.unknown_keys("flow", raw, set(ROWS))
    out: dict[str, tuple[str, ...]] = {}
    for row, items in raw.items():
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise r.fail(f"flow.{row}", f"must be a list of sessions, got {items!r}")
        try:
            parse_steps(f"{row}", items)  # validates the syntax now, with the file and key in the message
        except ConfigError as err:
            raise ConfigError(f"{r.path}: {err}") from None
        out[row] = tuple(items)
    return out
