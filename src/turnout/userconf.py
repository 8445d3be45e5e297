"""The user's own settings, set once from the CLI and used by every command and server run by
that user: provider keys (``turnout keys set``), model aliases (``turnout aliases``) and a
default model (``turnout models default``).

One YAML file, owner-only (0600): ``$TURNOUT_USER_CONFIG``, else
``$XDG_CONFIG_HOME/turnout/user.yaml``, else ``~/.config/turnout/user.yaml``. It is the
weakest source: a key in the config file or the environment, an alias or default model in the
config file, wins over it. ``load_config`` reads it; a ``Config`` built in code does not.

Provider keys go to the system keyring instead when one is there (the ``keyring`` extra and a
real backend: Secret Service, macOS Keychain, Windows Credential Locker); the file then only
names the providers whose key is in the keyring (``keyring: [groq]``). A headless server
usually has no backend: the key stays in the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

__all__ = ["KEYRING_SERVICE", "UserConfig", "system_keyring", "user_config_path"]

KEYRING_SERVICE = "turnout"
"""The service name of provider keys in the system keyring (the user name is the provider)."""


def user_config_path() -> Path:
    explicit = os.environ.get("TURNOUT_USER_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "turnout" / "user.yaml"


def system_keyring() -> Any | None:
    """The system keyring's backend, or None: without the ``keyring`` extra, with no usable
    backend (``keyring`` then answers with its ``fail`` backend), or with
    ``TURNOUT_KEYRING=off``."""
    if os.environ.get("TURNOUT_KEYRING", "").strip().lower() in ("off", "0", "false", "no"):
        return None
    try:
        import keyring
        from keyring.backends import fail
        from keyring.errors import KeyringError
    except ImportError:
        return None
    try:
        backend = keyring.get_keyring()
    except (KeyringError, OSError, RuntimeError):
        return None
    if isinstance(backend, fail.Keyring) or getattr(backend, "priority", 0) <= 0:
        return None
    return backend


@dataclass
class UserConfig:
    path: Path
    keys: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    default_model: str | None = None
    in_keyring: list[str] = field(default_factory=list)
    """Providers whose key is in the system keyring (not in this file)."""

    def keyring_keys(self) -> dict[str, str]:
        """The keys of ``in_keyring`` read from the system keyring; empty when it is not
        available here (the names stay listed for when it is)."""
        backend = system_keyring() if self.in_keyring else None
        if backend is None:
            return {}
        from keyring.errors import KeyringError

        out = {}
        for name in self.in_keyring:
            try:
                key = backend.get_password(KEYRING_SERVICE, name)
            except KeyringError:
                key = None
            if key:
                out[name] = key
        return out

    @classmethod
    def load(cls, path: Path | None = None) -> UserConfig:
        path = path or user_config_path()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the user config: {exc}") from None
        import yaml

        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")

        def strings(name: str) -> dict[str, str]:
            value = data.get(name) or {}
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise ConfigError(f"{path}: {name}: expected a mapping of names to strings")
            return dict(value)

        default = data.get("default_model")
        if default is not None and not isinstance(default, str):
            raise ConfigError(f"{path}: default_model: expected a model name")
        unknown = set(data) - {"keys", "aliases", "default_model", "keyring"}
        if unknown:
            raise ConfigError(
                f"{path}: unknown key(s) {', '.join(sorted(unknown))} "
                "(expected keys, aliases, default_model, keyring)"
            )
        in_keyring = data.get("keyring") or []
        if not isinstance(in_keyring, list) or not all(isinstance(n, str) for n in in_keyring):
            raise ConfigError(f"{path}: keyring: expected a list of provider names")
        return cls(path, strings("keys"), strings("aliases"), default, list(in_keyring))

    def save(self) -> None:
        """Write the file owner-only (created 0600, never world-readable, even briefly)."""
        import yaml

        data: dict[str, Any] = {}
        if self.keys:
            data["keys"] = dict(sorted(self.keys.items()))
        if self.aliases:
            data["aliases"] = dict(sorted(self.aliases.items()))
        if self.default_model:
            data["default_model"] = self.default_model
        if self.in_keyring:
            data["keyring"] = sorted(set(self.in_keyring))
        text = "# turnout user settings (turnout keys set / aliases / models default)\n"
        text += yaml.safe_dump(data, sort_keys=False) if data else ""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self.path)
