"""Every fenced YAML, shell, console and Python example in README.md and docs/*.md is loaded or
run here, so an example that drifts from the code fails the suite.

- YAML that is a Turnout config (its top-level keys are config keys) is loaded with
  ``load_config`` and a ``Gateway`` is built from it (so its routes' model ids resolve); YAML
  of another tool is parsed only, and must be named in ``FOREIGN_YAML``.
- Shell (``sh``/``bash``) blocks run in bash with ``set -e -o pipefail``; ``console``
  transcripts run their ``$`` commands (the lines shown after them are illustrative output).
- Python blocks run in a fresh interpreter. A fragment that uses ``gw`` without making one
  runs inside ``async with Gateway.from_config("turnout.yaml") as gw:``.

Shell and Python run in a scratch directory whose ``turnout.yaml`` points the documented
providers at the loopback fakes, against two in-process servers on the real embedded model:
an open one (no master key) and, for blocks that send ``$TURNOUT_MASTER_KEY``, one with a
master key. ``127.0.0.1:4000`` and ``localhost:4000`` are rewritten to the server's port. A
block fails when it exits non-zero or prints an error body.

``SKIP`` names each block that cannot run here, with the reason; a block it names that no
longer exists fails the suite too, so the list cannot rot.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from turnout.config import Config, load_config
from turnout.errors import MissingDependencyError
from turnout.gateway import Gateway

from .conftest import HAS_LOCAL, MASTER_KEY, without_turnout_settings
from .fakes.anthropic_upstream import FakeAnthropic
from .fakes.openai_upstream import FakeOpenAI
from .fakes.servers import AiohttpThread, UvicornThread

ROOT = Path(__file__).resolve().parents[1]
LANGS = {
    "yaml": "yaml",
    "yml": "yaml",
    "sh": "shell",
    "bash": "shell",
    "shell": "shell",
    "console": "console",
    "python": "python",
    "py": "python",
}

# (file, first line of the block) -> why it cannot run in the test suite.
SKIP: dict[tuple[str, str], str] = {
    (
        "README.md",
        "make serve    # set up .venv and start the gateway on http://127.0.0.1:4000 "
        "with the embedded model",
    ): "starts a foreground server and runs the suite itself; the "
    "server it starts is the one every other example here talks to",
    (
        "README.md",
        "make bench                              # Turnout vs LiteLLM on one mock "
        "upstream, same run",
    ): "a 10-minute benchmark that installs LiteLLM in its own venv "
    "(tests/test_bench_harness.py covers its harness)",
    (
        "benchmarks.md",
        "make bench                                  # full run, about 10 minutes",
    ): "the same 10-minute benchmark",
    ("bedrock.md", "pip install 'turnout[bedrock]'"): "installs from the network",
    (
        "bedrock.md",
        'turnout chat -m bedrock:anthropic.claude-3-haiku-20240307-v1:0 "Say hi"',
    ): "needs AWS; tests/test_bedrock_fake.py runs the same calls against the Bedrock fake",
    ("blaxel.md", "export BL_API_KEY=... BL_WORKSPACE=my-workspace"): "needs a Blaxel "
    "workspace; tests/test_blaxel.py runs the adapter against the Blaxel fake",
    ("providers-native.md", "export GEMINI_API_KEY=... CO_API_KEY=..."): "starts a foreground "
    "server; tests/test_native_docs.py runs this route against the Gemini, Cohere and Ollama "
    "fakes",
    ("accounting.md", '$ export M="Authorization: Bearer $TURNOUT_MASTER_KEY"'): "update and "
    "delete take the id the create printed, which differs every run; tests/test_gateway_keys.py "
    "makes the same calls with the real id",
    (
        "accounting.md",
        '$ curl -si localhost:4000/v1/chat/completions -H "Authorization: Bearer $KEY" \\',
    ): "shows the 429 a gateway key over its rpm gets; tests/test_limits.py asserts that response",
    (
        "accounting.md",
        "$ turnout gateway-keys create --name team-a --rpm 60 --budget-daily 5 --model smart",
    ): "update and revoke take the id the create printed, which differs every run; "
    "tests/test_keys_cli.py runs the same sequence with the real id",
    (
        "deploy.md",
        "docker build -t turnout .                                        # gateway "
        "+ PostgreSQL and Redis clients",
    ): "needs Docker; tests/test_deploy_image.py checks the Dockerfile offline",
    ("deploy.md", "cd deploy/compose"): "needs Docker Compose; tests/test_deploy_manifests.py "
    "validates the Compose file",
    ("deploy.md", "kubectl create namespace llm"): "needs a Kubernetes cluster",
    ("deploy.md", "helm install gw deploy/helm/turnout -n llm -f my-values.yaml"): "needs a "
    "Kubernetes cluster; tests/test_deploy_manifests.py renders the chart",
    (
        "deploy.md",
        "kill -HUP <pid of turnout serve>                       # with --workers N: "
        "the parent's pid",
    ): "the pid is a placeholder; tests/test_reload.py sends SIGHUP and calls both endpoints",
    (
        "testing.md",
        "make test                                   # ruff, mypy, then the whole suite",
    ): "runs this suite itself",
    (
        "benchmarks.md",
        "make bench-soak                                                   # about 10 minutes",
    ): "a 10-minute soak benchmark (tests/test_bench_harness.py covers the harness)",
    ("console.md", "TURNOUT_SCREENSHOTS=1 .venv/bin/pytest tests/test_console_browser.py"): "runs "
    "the console's browser tests, which are part of this suite",
}

# YAML of another tool: parsed, not loaded as a Turnout config.
FOREIGN_YAML = {
    ("api.md", "# prometheus.yml"),
    ("deploy.md", "# my-values.yaml"),  # Helm values: tests/test_deploy_manifests.py renders
}

# The scratch directory's config: every provider the runnable examples name, on the fakes.
DOCS_CONFIG = """\
providers:
  groq: {{base_url: "{openai}/v1", api_key: sk-docs-upstream-0001}}
  openai: {{base_url: "{openai}/v1", api_key: sk-docs-upstream-0002}}
  sambanova: {{base_url: "{openai}/v1", api_key: sk-docs-upstream-0003}}
  anthropic: {{base_url: "{anthropic}/v1"}}
routes:
  - name: smart
    deployments: [groq:llama-3.3-70b-versatile, openai:gpt-4o-mini, local:smollm2-135m-instruct]
database_url: "sqlite:///{workdir}/turnout.db"
key_health: {{enabled: false}}
"""

# An error answer (OpenAI's {"error": {...}}, Anthropic's "type": "error"), not a log entry's
# "error": "RateLimitError" field.
ERROR_BODY = re.compile(r'"error"\s*:\s*\{|"type"\s*:\s*"error"')


@dataclass(frozen=True)
class Block:
    path: Path
    line: int
    lang: str
    text: str
    expected_error: str | None = None
    """The error code of the JSON block shown right after this one, when the page shows the
    example failing on purpose: then that error (and no other) is what must come out."""

    @property
    def first(self) -> str:
        return next((ln.strip() for ln in self.text.splitlines() if ln.strip()), "")

    @property
    def key(self) -> tuple[str, str]:
        return (self.path.name, self.first)

    @property
    def id(self) -> str:
        return f"{self.path.name}:{self.line}"


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def doc_blocks() -> list[Block]:
    found = []
    fence = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```", re.S | re.M)
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        for m in fence.finditer(text):
            lang = LANGS.get(m.group(1).lower())
            if lang is not None:
                after = re.match(r"\s*```json\n(.*?)```", text[m.end() :], re.S)
                code = re.search(r'"code":\s*"([^"]+)"', after.group(1)) if after else None
                line = text.count("\n", 0, m.start()) + 1
                found.append(Block(path, line, lang, m.group(2), code.group(1) if code else None))
    return found


BLOCKS = doc_blocks()


def test_the_skip_list_names_only_blocks_that_exist() -> None:
    """Entries for a page that is not there (yet: written on another branch) are allowed."""
    keys = {b.key for b in BLOCKS}
    pages = {p.name for p in doc_files()}
    stale = [k for k in [*SKIP, *FOREIGN_YAML] if k not in keys and k[0] in pages]
    assert not stale, f"SKIP / FOREIGN_YAML entries with no matching block: {stale}"


def test_every_block_kind_is_covered() -> None:
    """The fence languages used in the docs are known (a ``zsh`` block would slip past)."""
    fence = re.compile(r"^```(\w+)", re.M)
    known = {*LANGS, "json", "text", "http", "ts", "typescript", "toml", "ini", "dockerfile"}
    unknown = {
        (p.name, lang)
        for p in doc_files()
        for lang in fence.findall(p.read_text(encoding="utf-8"))
        if lang.lower() not in known
    }
    assert not unknown


# --- YAML ---------------------------------------------------------------------------------


def _fill_env(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text):
        monkeypatch.setenv(name, f"doc-value-of-{name.lower()}-0000")


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "yaml"], ids=lambda b: b.id)
async def test_yaml_example_loads(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = yaml.safe_load(block.text)
    assert isinstance(data, dict), "a YAML example should be a mapping"
    if block.key in FOREIGN_YAML:
        return
    unknown = set(data) - set(Config.model_fields)
    assert not unknown, f"not Turnout config keys (typo, or add to FOREIGN_YAML): {unknown}"
    _fill_env(block.text, monkeypatch)
    path = tmp_path / "turnout.yaml"
    path.write_text(block.text, encoding="utf-8")
    config = load_config(path)
    try:
        gw = Gateway(config)  # routes resolve: every model id in them is servable
    except MissingDependencyError as exc:  # e.g. otel: the example needs an extra
        pytest.skip(f"the config loads; building a gateway from it needs an extra: {exc}")
    async with gw:
        for route in gw.router.routes():
            assert route.deployments


# --- servers and the scratch directory ------------------------------------------------------


@dataclass
class DocsWorld:
    workdir: Path
    open_url: str
    master_url: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DocsWorld]:
    if not HAS_LOCAL:
        pytest.skip("the examples talk to the embedded model: needs the 'local' extra")
    workdir = tmp_path_factory.mktemp("docs")
    openai_fake, anthropic_fake = FakeOpenAI(), FakeAnthropic()
    fakes = [AiohttpThread(f.app).start() for f in (openai_fake, anthropic_fake)]
    (workdir / "turnout.yaml").write_text(
        DOCS_CONFIG.format(openai=fakes[0].url, anthropic=fakes[1].url, workdir=workdir)
    )
    (workdir / "prompts.txt").write_text("Say hi.\nName a colour.\n")
    from turnout.server import create_app

    config = load_config(workdir / "turnout.yaml")
    from turnout.accounting.db import Database, database_url

    url = database_url(config)
    assert url is not None
    Database(url).upgrade()  # before the servers start, so none of them races the CLI's
    open_server = UvicornThread(create_app(Gateway(config))).start()
    master = config.model_copy(deep=True)
    master.server.master_key = SecretStr(MASTER_KEY)
    master_server = UvicornThread(create_app(Gateway(master))).start()
    yield DocsWorld(workdir, open_server.url, master_server.url)
    master_server.stop()
    open_server.stop()
    for f in fakes:
        f.stop()


def _uses_master(text: str) -> bool:
    return "TURNOUT_MASTER_KEY" in text or "$M" in text


def _localise(text: str, world: DocsWorld) -> str:
    url = world.master_url if _uses_master(text) else world.open_url
    return re.sub(r"(https?://)?(127\.0\.0\.1|localhost):4000", url, text)


def _env(world: DocsWorld) -> dict[str, str]:
    env = without_turnout_settings()
    return {
        **env,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "TURNOUT_MASTER_KEY": MASTER_KEY,
        "M": f"Authorization: Bearer {MASTER_KEY}",
        "TURNOUT_PRELOAD_LOCAL": "false",
        "HOME": str(world.workdir),
    }


def _check(out: subprocess.CompletedProcess[str], block: Block) -> None:
    shown = (
        f"{block.id} exited {out.returncode}\n--- stdout\n{out.stdout}\n--- stderr\n{out.stderr}"
    )
    assert out.returncode == 0, shown
    if block.expected_error is not None:
        assert f'"code":"{block.expected_error}"' in out.stdout.replace(" ", ""), shown
    else:
        assert not ERROR_BODY.search(out.stdout), shown
    assert "Traceback" not in out.stderr, shown


def _run(args: list[str], world: DocsWorld) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=world.workdir,
        env=_env(world),
        capture_output=True,
        text=True,
        timeout=180,
    )


def _runnable(lang: str) -> list[object]:
    return [
        pytest.param(b, id=b.id, marks=pytest.mark.skip(reason=SKIP[b.key]))
        if b.key in SKIP
        else pytest.param(b, id=b.id, marks=pytest.mark.local_model)
        for b in BLOCKS
        if b.lang == lang
    ]


# --- shell, console, Python ------------------------------------------------------------------


@pytest.mark.parametrize("block", _runnable("shell"))
def test_shell_example_runs(block: Block, world: DocsWorld) -> None:
    script = "set -e -o pipefail\n" + _localise(block.text, world)
    _check(_run(["bash", "-c", script], world), block)


def console_commands(text: str) -> list[str]:
    """The commands of a transcript: each ``$`` line, with the lines that complete it (an open
    quote or a trailing backslash); everything else is output."""
    commands: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if current is not None:
            current.append(line)
        elif line.startswith("$ "):
            current = [line[2:]]
        else:
            continue
        joined = "\n".join(current)
        try:
            shlex.split(joined, comments=True)
            complete = not joined.endswith("\\")
        except ValueError:
            complete = False
        if complete:
            commands.append(joined)
            current = None
    return commands


@pytest.mark.parametrize("block", _runnable("console"))
def test_console_example_runs(block: Block, world: DocsWorld) -> None:
    commands = console_commands(block.text)
    assert commands, f"{block.id}: a console block without a '$ ' command"
    script = "set -e -o pipefail\n" + "\n".join(_localise(c, world) for c in commands)
    _check(_run(["bash", "-c", script], world), block)


def _python_source(block: Block, world: DocsWorld) -> str:
    code = _localise(block.text, world)
    if re.search(r"\bgw\.", code) and not re.search(r"\bas gw\b|\bgw\s*=", code):
        body = textwrap.indent(code, "        ")
        code = (
            "import asyncio\nfrom turnout import Gateway\n\n"
            "async def _example():\n"
            '    async with Gateway.from_config("turnout.yaml") as gw:\n'
            f"{body}\n\nasyncio.run(_example())\n"
        )
    return code


@pytest.mark.parametrize("block", _runnable("python"))
def test_python_example_runs(block: Block, world: DocsWorld) -> None:
    _check(_run([sys.executable, "-c", _python_source(block, world)], world), block)


def test_console_commands_are_split_from_their_output() -> None:
    text = '$ curl -s x -d \'{"a":\n    1}\'\n{"out": 1}\n$ echo a \\\n  b\na b\n'
    assert console_commands(text) == ["curl -s x -d '{\"a\":\n    1}'", "echo a \\\n  b"]
