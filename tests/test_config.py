"""load_config: one YAML file plus the environment, and errors that say where and what."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import SecretStr

from turnout.config import ENV_KEYS, Config, RouteConfig, load_config
from turnout.errors import ConfigError
from turnout.gateway import Gateway
from turnout.hosts import HOSTS

SECRET = "sk-live-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TURNOUT_* variable, provider key or ./turnout.yaml from the developer's machine."""
    for var in (*ENV_KEYS, "TURNOUT_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    for host in HOSTS.values():
        for var in (host.key_env, *host.settings_env.values()):
            if var:
                monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


# --- loading -----------------------------------------------------------------------------

VALID = """
server:
  port: 8080
  master_key: ${MASTER_KEY}
drop_params: true
log_level: debug
providers:
  openai:
    api_key: ${OPENAI_KEY}
  azure:
    settings:
      endpoint: https://res.openai.azure.com
      api_version: "2024-10-21"
  mine:
    host: custom
    base_url: http://10.0.0.5:8000/v1
routes:
  - name: fast
    deployments:
      - openai:gpt-4o-mini
      - model: azure:gpt-4o
        params: {temperature: 0.2}
    retry: {retries: 3, backoff_base: 0.5}
    timeouts: {first_token: 5}
models:
  - id: mine:qwen-72b
    context_window: 32768
    input_price: 0.5
    output_price: 1.5
    capabilities: [tools, streaming]
    aliases: [qwen]
    quality: 0.7
"""


def test_valid_file_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MASTER_KEY", "gateway-master-key")
    monkeypatch.setenv("OPENAI_KEY", SECRET)
    path = write(tmp_path, VALID)
    config = load_config(path)

    assert config.source == str(path)
    assert config.server.port == 8080
    assert config.server.host == "127.0.0.1"  # default kept
    assert config.server.master_key == SecretStr("gateway-master-key")
    assert config.drop_params is True
    assert config.log_level == "debug"

    openai = config.providers["openai"]
    assert openai.api_key is not None
    assert openai.api_key.get_secret_value() == SECRET
    assert config.providers["azure"].settings == {
        "endpoint": "https://res.openai.azure.com",
        "api_version": "2024-10-21",
    }
    assert config.providers["mine"].host == "custom"

    (route,) = config.routes
    assert route.name == "fast"
    assert [d.model for d in route.deployments] == ["openai:gpt-4o-mini", "azure:gpt-4o"]
    assert route.deployments[1].params == {"temperature": 0.2}
    assert route.retry is not None and route.retry.retries == 3
    assert route.retry.backoff_base == 0.5
    assert route.timeouts is not None and route.timeouts.first_token == 5

    (model,) = config.models
    assert model.id == "mine:qwen-72b"
    assert model.capabilities == ["tools", "streaming"]
    assert model.aliases == ["qwen"]

    # Secrets stay hidden when the config is printed or logged.
    assert SECRET not in repr(config)
    assert SECRET not in str(config.model_dump())


def test_valid_file_builds_a_gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MASTER_KEY", "gateway-master-key")
    monkeypatch.setenv("OPENAI_KEY", SECRET)
    gateway = Gateway(load_config(write(tmp_path, VALID)))
    route = gateway.router.resolve("fast")
    assert [d.id for d in route.deployments] == ["openai:gpt-4o-mini", "azure:gpt-4o"]
    assert route.retry.retries == 3
    assert gateway.router.resolve("qwen").deployments[0].id == "mine:qwen-72b"
    entry = gateway.catalogue.get("qwen")
    assert entry is not None and entry.quality == 0.7


def test_empty_file_gives_defaults(tmp_path: Path):
    path = write(tmp_path, "# nothing yet\n")
    config = load_config(path)
    assert config.source == str(path)
    assert config.server.port == 4000
    assert config.routes == []


def test_no_file_anywhere_gives_defaults():
    config = load_config()
    assert config.source == "<defaults>"
    assert config == Config()


def test_turnout_yaml_in_working_directory_is_picked_up(tmp_path: Path):
    write(tmp_path, "server: {port: 4100}\n", name="turnout.yaml")
    assert load_config().server.port == 4100


def test_turnout_config_variable_is_picked_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    write(tmp_path, "server: {port: 4100}\n", name="turnout.yaml")
    path = write(tmp_path, "server: {port: 4200}\n", name="elsewhere.yaml")
    monkeypatch.setenv("TURNOUT_CONFIG", str(path))
    config = load_config()
    assert config.server.port == 4200
    assert config.source == str(path)


def test_explicit_path_beats_turnout_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TURNOUT_CONFIG", str(write(tmp_path, "server: {port: 4200}\n", "a.yaml")))
    assert load_config(write(tmp_path, "server: {port: 4300}\n", "b.yaml")).server.port == 4300


def test_turnout_config_pointing_nowhere_is_an_error(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TURNOUT_CONFIG", "/nonexistent/turnout.yaml")
    with pytest.raises(ConfigError, match="/nonexistent/turnout.yaml: config file not found"):
        load_config()


# --- ${VAR} expansion ----------------------------------------------------------------------


def test_variable_expansion(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GPU_HOST", "gpu-box")
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("LEVEL", "warning")
    path = write(
        tmp_path,
        """
server:
  port: ${PORT}
log_level: ${LEVEL:-info}
default_model: ${DEFAULT_MODEL:-local:smollm2-135m-instruct}
providers:
  mine:
    host: custom
    base_url: ${SCHEME:-http}://${GPU_HOST}:${GPU_PORT:-8000}/v1
""",
    )
    config = load_config(path)
    assert config.server.port == 9000  # expanded text, then validated as an int
    assert config.log_level == "warning"  # set variable beats the default
    assert config.default_model == "local:smollm2-135m-instruct"
    assert config.providers["mine"].base_url == "http://gpu-box:8000/v1"


def test_empty_default_is_allowed(tmp_path: Path):
    path = write(tmp_path, "providers: {openai: {base_url: '${OPENAI_BASE:-}'}}\n")
    assert load_config(path).providers["openai"].base_url == ""


def test_default_used_for_empty_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("LEVEL", "")
    assert load_config(write(tmp_path, "log_level: ${LEVEL:-info}\n")).log_level == "info"


def test_unset_variable_names_file_key_and_variable(tmp_path: Path):
    path = write(tmp_path, "providers:\n  openai:\n    api_key: ${OPENAI_KEY}\n")
    message = config_error(path)
    assert str(path) in message
    assert "providers.openai.api_key" in message
    assert "${OPENAI_KEY}" in message


def test_unset_variable_inside_a_list(tmp_path: Path):
    path = write(
        tmp_path,
        "routes:\n  - name: r\n    deployments:\n      - openai:gpt-4o\n      - ${SECOND}\n",
    )
    message = config_error(path)
    assert "routes[0].deployments[1]" in message
    assert "${SECOND}" in message


# --- validation errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("server:\n  port: abc\n", "server.port", "valid integer"),
        ("server:\n  port: 70000\n", "server.port", "less than or equal to 65535"),
        ("routes:\n  - name: r\n", "routes[0].deployments", "Field required"),
        ("routes:\n  - name: r\n    deployments: []\n", "routes[0].deployments", "at least 1"),
        ("routes:\n  - deployments: [openai:x]\n", "routes[0].name", "Field required"),
        ("log_level: verbose\n", "log_level", "'debug', 'info', 'warning' or 'error'"),
        ("timeouts: {connect: 0}\n", "timeouts.connect", "greater than 0"),
        ("providers: {openai: {settings: [a, b]}}\n", "providers.openai.settings", "dictionary"),
        (
            "models:\n  - id: a:b\n    capabilities: [telepathy]\n",
            "models[0].capabilities[0]",
            "'tools'",
        ),
    ],
)
def test_wrong_value_names_file_key_and_expectation(
    tmp_path: Path, text: str, key: str, expected: str
):
    path = write(tmp_path, text)
    message = config_error(path)
    assert f"{path}: {key}: " in message
    assert expected in message


def test_wrong_plain_value_is_shown(tmp_path: Path):
    message = config_error(write(tmp_path, "server:\n  port: abc\n"))
    assert "(got 'abc')" in message


def test_every_problem_is_reported(tmp_path: Path):
    path = write(tmp_path, "server:\n  port: abc\nlog_level: loud\nroutes:\n  - name: r\n")
    message = config_error(path)
    for key in ("server.port", "log_level", "routes[0].deployments"):
        assert f"{path}: {key}: " in message


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("rotues: []\n", "rotues"),
        ("server:\n  prot: 1\n", "server.prot"),
        ("providers:\n  openai:\n    base: http://x\n", "providers.openai.base"),
        (
            "routes:\n  - name: r\n    deployments: [openai:x]\n    retires: 2\n",
            "routes[0].retires",
        ),
    ],
)
def test_unknown_key_is_rejected(tmp_path: Path, text: str, key: str):
    path = write(tmp_path, text)
    message = config_error(path)
    assert f"{path}: {key}: Extra inputs are not permitted" in message


def test_duplicate_route_names(tmp_path: Path):
    path = write(
        tmp_path,
        "routes:\n"
        "  - {name: fast, deployments: [openai:gpt-4o-mini]}\n"
        "  - {name: fast, deployments: [groq:llama-3.1-8b-instant]}\n",
    )
    message = config_error(path)
    assert f"{path}: routes: " in message
    assert "route name 'fast' appears twice" in message


# --- the environment overlay --------------------------------------------------------------


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TURNOUT_PORT", "5001")
    monkeypatch.setenv("TURNOUT_DROP_PARAMS", "true")
    monkeypatch.setenv("TURNOUT_MASTER_KEY", "from-env")
    monkeypatch.setenv("TURNOUT_LOG_LEVEL", "error")
    config = load_config(write(tmp_path, "server:\n  port: 5000\n  host: 0.0.0.0\n"))
    assert config.server.port == 5001
    assert config.server.host == "0.0.0.0"
    assert config.drop_params is True
    assert config.server.master_key == SecretStr("from-env")
    assert config.log_level == "error"


def test_environment_applies_without_a_file(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TURNOUT_DEFAULT_MODEL", "groq:llama-3.1-8b-instant")
    assert load_config().default_model == "groq:llama-3.1-8b-instant"


def test_bad_environment_value_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TURNOUT_PORT", "notanumber")
    path = write(tmp_path, "log_level: loud\n")
    message = config_error(path)
    assert "$TURNOUT_PORT: server.port: " in message
    assert "valid integer" in message
    assert f"{path}: server.port" not in message  # the file did not say it
    assert f"{path}: log_level: " in message  # the file's own mistake is still its own


def test_environment_with_empty_section_in_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TURNOUT_PORT", "5001")
    path = write(tmp_path, "server:\n  # port: 4000\n")
    assert load_config(path).server.port == 5001


# --- secrets never echoed ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (f"server:\n  master_key: [{SECRET}]\n", "server.master_key"),
        ("server:\n  master_key: 123456789012345\n", "server.master_key"),
        ("providers:\n  openai:\n    api_key: 987654321098765\n", "providers.openai.api_key"),
        (f"providers:\n  openai:\n    api_key: {{value: {SECRET}}}\n", "providers.openai.api_key"),
        (f"providers:\n  openai:\n    apikey: {SECRET}\n", "providers.openai.apikey"),
    ],
)
def test_bad_secret_value_is_never_echoed(tmp_path: Path, text: str, key: str):
    path = write(tmp_path, text)
    message = config_error(path)
    assert f"{path}: {key}: " in message
    for secret in (SECRET, "123456789012345", "987654321098765"):
        assert secret not in message


def test_bad_master_key_from_environment_is_not_echoed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TURNOUT_MASTER_KEY", SECRET)
    path = write(tmp_path, f"server:\n  master_key: {SECRET}\n  port: abc\n")
    message = config_error(path)
    assert SECRET not in message


def test_secret_in_the_wrong_place_is_not_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    message = config_error(write(tmp_path, "providers:\n  openai: ${OPENAI_API_KEY}\n"))
    assert "providers.openai" in message
    assert SECRET not in message


# --- file-level problems -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "got"),
    [("- a\n- b\n", "list"), ("just a string\n", "str"), ("42\n", "int")],
)
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str, got: str):
    path = write(tmp_path, text)
    message = config_error(path)
    assert message == f"{path}: expected a mapping at the top level, got {got}"


def test_missing_file(tmp_path: Path):
    path = tmp_path / "nope.yaml"
    assert config_error(path) == f"{path}: config file not found"


def test_invalid_yaml(tmp_path: Path):
    path = write(tmp_path, "server:\n  port: 80\n    host: [unclosed\n")
    message = config_error(path)
    assert message.startswith(f"{path}: not valid YAML")
    assert "line" in message


def test_directory_instead_of_file(tmp_path: Path):
    message = config_error(tmp_path)
    assert message.startswith(f"{tmp_path}: ")


# --- gateway construction validates routes ------------------------------------------------


def route(*models: str, name: str = "fast") -> RouteConfig:
    return RouteConfig(name=name, deployments=[{"model": m} for m in models])


def test_gateway_rejects_a_route_with_an_unknown_provider():
    config = Config(routes=[route("openai:gpt-4o-mini", "nosuch:model")])
    with pytest.raises(ConfigError) as info:
        Gateway(config)
    message = str(info.value)
    assert "routes[fast].deployments[1]" in message
    assert "unknown provider 'nosuch'" in message


def test_gateway_rejects_a_route_with_an_unknown_host():
    config = Config(
        providers={"mine": {"host": "nosuchhost", "base_url": "http://x"}},
        routes=[route("mine:m")],
    )
    with pytest.raises(ConfigError, match=r"routes\[fast\]\.deployments\[0\].*nosuchhost"):
        Gateway(config)


def test_gateway_rejects_a_route_missing_a_provider_setting():
    with pytest.raises(ConfigError, match=r"providers\.azure\.settings\.endpoint"):
        Gateway(Config(routes=[route("azure:gpt-4o")]))


def test_gateway_error_names_the_config_file(tmp_path: Path):
    path = write(tmp_path, "routes:\n  - {name: fast, deployments: [nosuch:model]}\n")
    with pytest.raises(ConfigError, match="^" + re.escape(f"{path}: routes[fast]")):
        Gateway(load_config(path))


def test_gateway_accepts_routes_whose_keys_are_not_set_yet():
    # Keys are needed when a request is sent, not when the gateway starts.
    gateway = Gateway(Config(routes=[route("openai:gpt-4o-mini", "groq:llama-3.1-8b-instant")]))
    assert [d.id for d in gateway.router.resolve("fast").deployments] == [
        "openai:gpt-4o-mini",
        "groq:llama-3.1-8b-instant",
    ]
