"""The first five minutes with the `turnout` command, run as a user runs it (a subprocess, a
pseudo-terminal for the interactive session): piping, request options, conversations, errors
that fit on one line and point somewhere, listings that fit the terminal, keys and aliases set
once, the request log, and the server's start-up banner."""

from __future__ import annotations

import argparse
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from turnout.cli import build_parser
from turnout.commands import argtypes

from .conftest import UPSTREAM_KEY, without_turnout_settings
from .fakes.openai_upstream import FakeOpenAI, Reply


def run(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    base = without_turnout_settings()
    base.pop("GROQ_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "turnout.cli", *args],
        cwd=cwd,
        env={**base, "TURNOUT_USER_CONFIG": str(cwd / "user.yaml"), **(env or {})},
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def config(tmp_path: Path, fake_url: str) -> Path:
    path = tmp_path / "turnout.yaml"
    path.write_text(
        "providers:\n"
        f"  acme: {{host: custom, base_url: '{fake_url}', api_key: '{UPSTREAM_KEY}'}}\n"
        "routes:\n"
        "  - name: acme-route\n"
        "    deployments: [acme:acme-large]\n"
        "  - name: keyless\n"
        "    deployments: [groq:llama-3.1-8b-instant, acme:acme-large]\n"
        "models:\n"
        "  - {id: 'acme:acme-large', input_price: 2.0, output_price: 8.0, aliases: [big]}\n"
        "default_model: acme-route\n"
    )
    return path


def sent_messages(fake: FakeOpenAI) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = fake.calls[-1]["body"]["messages"]
    return messages


# --- piping, request options ----------------------------------------------------------------


def test_piped_input_comes_before_the_prompt(config: Path, fake: FakeOpenAI) -> None:
    out = run("chat", "Summarise this", "--config", str(config), cwd=config.parent,
              stdin="line one\nline two\n")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert sent_messages(fake)[-1]["content"] == "line one\nline two\n\nSummarise this"
    out = run("chat", "-", "--config", str(config), cwd=config.parent, stdin="only stdin\n")
    assert out.returncode == 0, out.stderr
    assert sent_messages(fake)[-1]["content"] == "only stdin"
    out = run("chat", "--config", str(config), cwd=config.parent, stdin="no prompt given\n")
    assert out.returncode == 0, out.stderr
    assert sent_messages(fake)[-1]["content"] == "no prompt given"


def test_options_pass_through_and_a_bad_one_is_named(config: Path, fake: FakeOpenAI) -> None:
    out = run("chat", "hi", "-o", "temperature", "0", "-o", "seed", "7", "-o", "user", "me",
              "--config", str(config), cwd=config.parent)  # fmt: skip
    assert out.returncode == 0, out.stderr
    body = fake.calls[-1]["body"]
    assert (body["temperature"], body["seed"], body["user"]) == (0, 7, "me")
    out = run("chat", "hi", "-o", "temperature", "hot", "--config", str(config),
              cwd=config.parent)  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("turnout: -o temperature:")


# --- errors: one line, naming the flag or pointing to the fix --------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["chat", "hi", "--max-tokens", "0"], "--max-tokens: must be at least 1"),
        (["chat", "hi", "--max-tokens", "many"], "--max-tokens: expected a whole number"),
        (["chat", "hi", "--temperature", "9"], "--temperature: expected a number from 0 to 2"),
        (["serve", "--port", "70000"], "--port: expected 0 to 65535"),
        (["bench", "-n", "0"], "--samples/-n: must be at least 1"),
        (["logs", "--since", "yesterday"], "--since: expected an age like 30m"),
        (["logs", "--status", "teapot"], "--status: expected 200, 4xx, 5xx"),
        (["models", "--capability", "telepathy"], "--capability: invalid choice"),
    ],
)
def test_usage_errors_are_one_line_naming_the_flag(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    out = run(*args, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1, out.stderr
    assert needle in out.stderr and "--help" in out.stderr and "usage:" not in out.stderr


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (argtypes.positive, "many", "expected a whole number, got 'many'"),
        (argtypes.positive, "0", "must be at least 1, got 0"),
        (argtypes.positive_seconds, "soon", "expected seconds, got 'soon'"),
        (argtypes.positive_seconds, "-0.50", "must be more than 0, got -0.50"),
        (argtypes.positive_seconds, "nan", "must be more than 0, got nan"),
        (argtypes.port, "http", "expected a port number, got 'http'"),
        (argtypes.port, "70000", "expected 0 to 65535, got 70000"),
        (argtypes.temperature, "hot", "expected a number from 0 to 2, got 'hot'"),
        (argtypes.temperature, "2.50", "expected a number from 0 to 2, got 2.5"),
    ],
)
def test_each_argument_type_says_what_it_expected(
    parse: Callable[[str], object], text: str, message: str
) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as raised:
        parse(text)
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("parse", "text", "value"),
    [
        (argtypes.positive, "1", 1),
        (argtypes.positive_seconds, "0.25", 0.25),
        (argtypes.port, "0", 0),
        (argtypes.port, "65535", 65535),
        (argtypes.temperature, "0", 0.0),
        (argtypes.temperature, "2", 2.0),
    ],
)
def test_each_argument_type_takes_its_bounds(
    parse: Callable[[str], object], text: str, value: object
) -> None:
    assert parse(text) == value


def test_an_unknown_model_suggests_the_nearest_names(tmp_path: Path) -> None:
    out = run("chat", "hi", "-m", "smolm2", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1, out.stderr
    assert "did you mean 'smollm2'" in out.stderr and "turnout models" in out.stderr
    out = run("chat", "hi", "-m", "gpt-5-mni", cwd=tmp_path)
    assert "openai:gpt-5-mini" in out.stderr or "gpt-5-mini" in out.stderr


def test_a_bad_config_value_is_one_line_without_pydantic_text(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  port: lots\n")
    for args in (["models"], ["logs"], ["keys", "list"], ["aliases", "list"], ["db", "upgrade"]):
        out = run(*args, "--config", str(bad), cwd=tmp_path)
        assert out.returncode == 1, args
        assert "server.port" in out.stderr and "Traceback" not in out.stderr, args
        assert "pydantic" not in out.stderr and "errors.pydantic.dev" not in out.stderr


def _leaves(
    parser: argparse.ArgumentParser, path: str = "turnout"
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _leaves(child, f"{path} {name}")
    return found


def test_every_subcommand_takes_config_and_documents_every_option() -> None:
    for path, parser in _leaves(build_parser()):
        assert "--config" in parser._option_string_actions, path
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{path} {action.option_strings[0]} has no help"
            rendered = parser.formatter_class(path)._get_help_string(action)  # type: ignore[attr-defined]
            if action.default not in (None, False, [], argparse.SUPPRESS):
                assert "default" in (rendered or ""), f"{path} {action.option_strings[0]}"


def test_config_comes_from_turnout_config_too(config: Path, fake: FakeOpenAI) -> None:
    out = run("models", cwd=config.parent / "..", env={"TURNOUT_CONFIG": str(config)})
    assert out.returncode == 0 and "acme-route" in out.stdout


# --- models -----------------------------------------------------------------------------------


def test_models_shows_what_can_be_used_and_all_says_why_not(config: Path) -> None:
    out = run("models", "--config", str(config), cwd=config.parent, env={"COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    assert "acme:acme-large" in out.stdout and "big" in out.stdout  # its alias is shown
    assert "local:smollm2-135m-instruct" in out.stdout and "smollm2" in out.stdout
    assert "groq:llama-3.1-8b-instant" not in out.stdout.split("MODEL", 1)[1]  # no GROQ key
    assert "turnout models --all" in out.stderr
    out = run("models", "--all", "--config", str(config), cwd=config.parent,
              env={"COLUMNS": "250"})  # fmt: skip
    groq = next(ln for ln in out.stdout.splitlines() if ln.startswith("groq:llama-3.1-8b"))
    assert "GROQ_API_KEY" in groq
    keyless = next(ln for ln in out.stdout.splitlines() if ln.startswith("keyless"))
    assert "acme:acme-large" in keyless


def test_models_fits_the_terminal(config: Path) -> None:
    out = run("models", "--all", "--config", str(config), cwd=config.parent,
              env={"COLUMNS": "72"})  # fmt: skip
    assert out.returncode == 0
    assert max(len(line) for line in out.stdout.splitlines()) <= 72


def test_provider_filters_and_by_is_deprecated(config: Path) -> None:
    out = run("models", "--all", "--provider", "groq", "--config", str(config), cwd=config.parent)
    names = [ln.split()[0] for ln in out.stdout.splitlines()[1:] if ":" in ln.split()[0]]
    assert names and all(n.startswith("groq:") for n in names)
    old = run("models", "--all", "--by", "groq", "--config", str(config), cwd=config.parent)
    assert old.stdout == out.stdout and "--by is deprecated" in old.stderr
    live = run("models", "--live", "--config", str(config), cwd=config.parent)
    assert live.returncode == 2 and "--live needs --provider" in live.stderr


# --- conversations --------------------------------------------------------------------------


def test_continue_a_conversation_and_list_them(config: Path, fake: FakeOpenAI) -> None:
    fake.then(Reply(text="Paris."), Reply(text="About 2.1 million."))
    first = run("chat", "Capital of France?", "--config", str(config), cwd=config.parent)
    assert first.returncode == 0, first.stderr
    assert "created database" in first.stderr and "turnout.db" in first.stderr
    cid = first.stderr.strip().splitlines()[-1].rstrip("]").split(" · ")[-1]
    assert cid.startswith("cv_")
    second = run("chat", "-c", "Its population?", "--config", str(config), cwd=config.parent)
    assert second.returncode == 0, second.stderr
    assert "created database" not in second.stderr
    assert [m["content"] for m in sent_messages(fake)] == [
        "Capital of France?",
        "Paris.",
        "Its population?",
    ]
    fake.then(Reply(text="ok"))
    third = run("chat", "--cid", cid, "And?", "--config", str(config), cwd=config.parent)
    assert third.returncode == 0 and len(sent_messages(fake)) == 5
    listing = run("chat", "--list", "--config", str(config), cwd=config.parent)
    assert cid in listing.stdout and "Capital of France?" in listing.stdout
    shown = run("chat", "--show", cid, "--config", str(config), cwd=config.parent)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.index("Capital of France?") < shown.stdout.index("About 2.1 million.")
    assert "acme:acme-large" in shown.stdout and shown.stdout.count("## user") == 3
    missing = run("chat", "--cid", "cv_nope", "x", "--config", str(config), cwd=config.parent)
    assert missing.returncode == 1 and "no such conversation" in missing.stderr


def test_no_store_keeps_nothing(config: Path, fake: FakeOpenAI) -> None:
    out = run("chat", "hi", "--no-store", "--config", str(config), cwd=config.parent)
    assert out.returncode == 0 and not (config.parent / "turnout.db").exists()


# --- the interactive session, under a pseudo-terminal ----------------------------------------


def _spawn(config: Path) -> object:
    pexpect = pytest.importorskip("pexpect")
    env = without_turnout_settings()
    env.update(TURNOUT_USER_CONFIG=str(config.parent / "user.yaml"),
               XDG_STATE_HOME=str(config.parent / "state"))  # fmt: skip
    return pexpect.spawn(
        sys.executable,
        ["-m", "turnout.cli", "chat", "--config", str(config)],
        cwd=str(config.parent),
        env=env,
        encoding="utf-8",
        timeout=60,
        # A runner started in the background (nohup, a CI job) may ignore SIGINT, and the
        # child would inherit that: give it the terminal's default, as a user's shell does.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def test_interactive_session_keeps_the_conversation(config: Path, fake: FakeOpenAI) -> None:
    child = _spawn(config)
    child.expect("/exit to leave")
    fake.then(Reply(text="Hello there."), Reply(text="Two lines read."), Reply(text="Fresh."))
    child.expect("> ")
    child.sendline("hi")
    child.expect("Hello there.")
    child.expect(r"tokens \d+ in")
    child.expect("> ")
    child.sendline('"""')
    child.sendline("first line")
    child.sendline("second line")
    child.sendline('"""')
    child.expect("Two lines read.")
    assert sent_messages(fake)[-1]["content"] == "first line\nsecond line"
    assert len(sent_messages(fake)) == 3  # hi, its answer, the two lines
    child.sendline("/system Answer in French.")
    child.expect("system prompt set")
    child.sendline("/model big")
    child.expect("model: big")
    child.sendline("/clear")
    child.expect("conversation cleared")
    child.sendline("again")
    child.expect("Fresh.")
    assert sent_messages(fake) == [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "again"},
    ]
    child.sendline("/model smolm2")
    child.expect("did you mean 'smollm2'")
    child.sendline("/exit")
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 0
    assert (config.parent / "state" / "turnout" / "history").is_file()


def pexpect_eof() -> object:
    import pexpect

    return pexpect.EOF


def test_ctrl_c_ends_the_answer_then_leaves(config: Path, fake: FakeOpenAI) -> None:
    child = _spawn(config)
    child.expect("> ")
    words = " ".join(f"w{i}" for i in range(200))
    fake.then(Reply(text=words, chunk_delay=0.05))
    child.sendline("talk for a while")
    child.expect("w3 ")
    child.sendintr()
    child.expect(r"interrupted")
    child.expect("> ")  # the session goes on
    child.sendintr()  # Ctrl-C at the prompt leaves
    child.expect(pexpect_eof())
    child.close()
    assert child.exitstatus == 0
    assert "w199" not in (child.before or "")


# --- keys, aliases, default model ------------------------------------------------------------


def test_keys_set_once_listed_by_source_never_in_full(tmp_path: Path) -> None:
    secret = "gsk-test-secret-key-9f3a"
    out = run("keys", "set", "groq", cwd=tmp_path, stdin=secret + "\n")
    assert out.returncode == 0, out.stderr
    user = tmp_path / "user.yaml"
    assert stat.S_IMODE(user.stat().st_mode) == 0o600 and secret in user.read_text()
    assert secret not in out.stdout + out.stderr and "9f3a" in out.stdout
    listing = run("keys", "list", cwd=tmp_path)
    row = next(ln for ln in listing.stdout.splitlines() if ln.startswith("groq"))
    assert "user config" in row and "...9f3a" in row and secret not in listing.stdout
    env = run("keys", "list", cwd=tmp_path, env={"GROQ_API_KEY": "gsk-from-env-000011"})
    row = next(ln for ln in env.stdout.splitlines() if ln.startswith("groq"))
    assert "environment ($GROQ_API_KEY)" in row and "...0011" in row
    models = run("models", cwd=tmp_path, env={"COLUMNS": "200"})
    assert "groq:llama-3.1-8b-instant" in models.stdout  # usable now: the stored key counts
    assert "gateway-keys" in listing.stderr
    unknown = run("keys", "set", "grok", cwd=tmp_path, stdin="x\n")
    assert unknown.returncode == 1 and "did you mean groq" in unknown.stderr


def test_keys_set_without_a_system_keyring_falls_back_to_the_file(tmp_path: Path) -> None:
    """keyring's own answer when no backend works (its ``fail`` backend, as on this headless
    machine): the key goes to the owner-only file, and the command says so."""
    pytest.importorskip("keyring")
    env = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    secret = "sk-test-fallback-key-77aa"
    out = run("keys", "set", "openai", cwd=tmp_path, stdin=secret + "\n", env=env)
    assert out.returncode == 0, out.stderr
    assert f"in {tmp_path / 'user.yaml'} (owner-only; no system keyring here)" in out.stdout
    assert secret in (tmp_path / "user.yaml").read_text()
    listing = run("keys", "list", cwd=tmp_path, env=env)
    row = next(ln for ln in listing.stdout.splitlines() if ln.startswith("openai"))
    assert "user config" in row and "...77aa" in row


def test_a_key_kept_in_an_unavailable_keyring_is_listed_as_such(tmp_path: Path) -> None:
    (tmp_path / "user.yaml").write_text("keyring: [groq]\n")
    listing = run("keys", "list", "--all", cwd=tmp_path, env={"TURNOUT_KEYRING": "off"})
    assert listing.returncode == 0, listing.stderr
    row = next(ln for ln in listing.stdout.splitlines() if ln.startswith("groq"))
    assert "no" in row.split() and "system keyring (not available here)" in row
    removed = run("keys", "remove", "groq", cwd=tmp_path, env={"TURNOUT_KEYRING": "off"})
    assert removed.returncode == 0 and "system keyring" in removed.stdout
    assert "groq" not in (tmp_path / "user.yaml").read_text()


def test_aliases_and_the_default_model(config: Path, fake: FakeOpenAI) -> None:
    here = config.parent
    assert run("aliases", "set", "fast", "big", "--config", str(config), cwd=here).returncode == 0
    listing = run("aliases", "list", "--config", str(config), cwd=here)
    assert any(ln.split()[:3] == ["fast", "big", "user"] for ln in listing.stdout.splitlines())
    out = run("chat", "hi", "-m", "fast", "--config", str(config), cwd=here)
    assert out.returncode == 0 and fake.calls[-1]["body"]["model"] == "acme-large"
    bad = run("aliases", "set", "oops", "smolm2", cwd=here)
    assert bad.returncode == 1 and "did you mean 'smollm2'" in bad.stderr
    shown = run("models", "default", "--config", str(config), cwd=here)
    assert shown.stdout.startswith("acme-route (from config file)")
    setting = run("models", "default", "smollm2", cwd=here)
    assert setting.returncode == 0 and "default_model (acme-route) wins" in setting.stderr
    elsewhere = here / "elsewhere"  # no turnout.yaml there: the user's default applies
    elsewhere.mkdir()
    user = {"TURNOUT_USER_CONFIG": str(here / "user.yaml")}
    shown = run("models", "default", cwd=elsewhere, env=user)
    assert shown.stdout.startswith("smollm2 (from user config)")
    assert run("aliases", "remove", "fast", cwd=here).returncode == 0
    assert "fast" not in run("aliases", "list", cwd=here).stdout.split()


def test_gateway_keys_have_their_own_name_and_the_old_one_still_works(tmp_path: Path) -> None:
    new = run("gateway-keys", "create", "--name", "team-a", cwd=tmp_path)
    assert new.returncode == 0 and "created key_" in new.stdout, new.stderr
    assert "created database" in new.stderr or (tmp_path / "turnout.db").exists()
    old = run("keys", "create", "--name", "team-b", cwd=tmp_path)
    assert old.returncode == 0 and "created key_" in old.stdout
    assert "deprecated" in old.stderr and "turnout gateway-keys create" in old.stderr
    listing = run("gateway-keys", "list", cwd=tmp_path)
    assert "team-a" in listing.stdout and "team-b" in listing.stdout


# --- the request log --------------------------------------------------------------------------


def test_logs_lists_filters_and_prints_json(tmp_path: Path) -> None:
    import asyncio

    import orjson

    from turnout.accounting.db import Database
    from turnout.accounting.records import UsageRecord
    from turnout.accounting.request_log import RequestLog
    from turnout.config import RequestLogConfig

    db = Database(f"sqlite:///{tmp_path / 'turnout.db'}")
    db.upgrade()
    now = time.time()

    async def fill() -> None:
        log = RequestLog(db, RequestLogConfig(flush_interval=0.05))
        log.start()
        for i, (status, model) in enumerate([(200, "m-a"), (502, "m-b"), (200, "m-b")]):
            log.submit(UsageRecord(ts=now - 3600 * (2 - i), route="r", status=status,
                                   provider="p", model=model, ttft=0.1, latency=0.5,
                                   input_tokens=10, output_tokens=5, cost=0.001))  # fmt: skip
        await log.flush(10)
        await log.aclose()

    asyncio.run(fill())
    db.dispose()
    out = run("logs", cwd=tmp_path, env={"COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 4 and "502" in out.stdout and "$0.001000" in out.stdout
    rows = [
        orjson.loads(x)
        for x in run("logs", "--json", "--model", "m-b", cwd=tmp_path).stdout.splitlines()
    ]
    assert [r["status"] for r in rows] == [200, 502]  # newest first
    rows = [
        orjson.loads(x)
        for x in run("logs", "--json", "--status", "5xx", cwd=tmp_path).stdout.splitlines()
    ]
    assert [r["model"] for r in rows] == ["m-b"]
    recent = run("logs", "--json", "--since", "90m", "-n", "5", cwd=tmp_path).stdout.splitlines()
    assert len(recent) == 2
    assert len(run("logs", "--json", "-n", "1", cwd=tmp_path).stdout.splitlines()) == 1
    empty = run("logs", cwd=tmp_path / "..")
    assert empty.returncode in (0, 1) and "Traceback" not in empty.stderr


# --- serve's banner ---------------------------------------------------------------------------


def test_serve_prints_a_banner_and_warns_for_missing_keys(config: Path) -> None:
    import httpx

    from .fakes.servers import free_port

    port = free_port()
    env = without_turnout_settings()
    env.pop("GROQ_API_KEY", None)
    env.update(TURNOUT_PRELOAD_LOCAL="false", TURNOUT_USER_CONFIG=str(config.parent / "u.yaml"))
    log = config.parent / "serve.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "turnout.cli", "serve", "--config", str(config),
             "--port", str(port)],  # fmt: skip
            cwd=config.parent, env=env, stdout=fh, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        models = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["data"]
        everything = httpx.get(f"http://127.0.0.1:{port}/v1/models?all=true").json()["data"]
    finally:
        proc.terminate()
        proc.wait(30)
    text = log.read_text()
    assert f"http://127.0.0.1:{port}" in text and f"config: {config}" in text
    assert "master key: off" in text and "turnout.db" in text
    assert "route acme-route: acme:acme-large (1/1 usable)" in text
    assert "warning: route keyless: groq:llama-3.1-8b-instant cannot work" in text
    assert "GROQ_API_KEY" in text
    assert "alembic" not in text.lower() and "Running upgrade" not in text
    ids = [m["id"] for m in models]
    assert "acme-route" in ids and "keyless" in ids and "groq:llama-3.1-8b-instant" not in ids
    assert "groq:llama-3.1-8b-instant" in [m["id"] for m in everything]
