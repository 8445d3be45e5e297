"""Settings a user sets once (``turnout.userconf``): ``turnout keys set|list|remove`` for
provider keys, ``turnout aliases set|list|remove``, ``turnout models default [MODEL]``."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import os
import sys
from collections.abc import Callable

from ..config import Config
from ..errors import ConfigError
from ..hosts import HOSTS
from ..userconf import KEYRING_SERVICE, UserConfig, system_keyring
from .table import render_table, terminal_width

__all__ = ["add_alias_commands", "add_provider_key_commands", "cmd_models_default"]

Load = Callable[[argparse.Namespace], Config]


def _last4(key: str) -> str:
    return f"...{key[-4:]}" if len(key) > 8 else "(short)"


def _known_provider(name: str, config: Config) -> None:
    if name not in HOSTS and name not in config.providers:
        import difflib

        near = difflib.get_close_matches(name, [*HOSTS, *config.providers], n=3)
        hint = f" (did you mean {' or '.join(near)}?)" if near else ""
        raise ConfigError(f"keys set: unknown provider '{name}'{hint}")


def cmd_keys_set(args: argparse.Namespace, config: Config) -> int:
    _known_provider(args.provider, config)
    if sys.stdin.isatty():
        key = getpass.getpass(f"{args.provider} API key (not echoed): ")
    else:
        key = sys.stdin.readline()
    key = key.strip()
    if not key:
        raise ConfigError("keys set: no key given (type it at the prompt, or pipe it in)")
    user = UserConfig.load()
    print(f"stored the {args.provider} key {_last4(key)} in {_store(user, args.provider, key)}")
    host = HOSTS.get((config.providers[args.provider].host or args.provider)
                     if args.provider in config.providers else args.provider)  # fmt: skip
    if host is not None and host.key_env and os.environ.get(host.key_env):
        print(f"note: ${host.key_env} is set and wins over the stored key", file=sys.stderr)
    return 0


def _store(user: UserConfig, provider: str, key: str) -> str:
    """Put ``key`` in the system keyring when there is one, else in the user config file;
    says where it went."""
    backend = system_keyring()
    if backend is not None:
        from keyring.errors import KeyringError

        try:
            backend.set_password(KEYRING_SERVICE, provider, key)
        except KeyringError as exc:  # e.g. a locked keyring: the file still works
            print(f"note: the system keyring refused the key ({exc})", file=sys.stderr)
        else:
            user.keys.pop(provider, None)
            user.in_keyring = sorted({*user.in_keyring, provider})
            user.save()
            return f"the system keyring ({_backend_name(backend)})"
    user.keys[provider] = key
    user.in_keyring = [n for n in user.in_keyring if n != provider]
    user.save()
    hint = "" if backend is not None else "; no system keyring here"
    return f"{user.path} (owner-only{hint})"


def _backend_name(backend: object) -> str:
    return str(getattr(backend, "name", None) or type(backend).__name__)


def cmd_keys_remove(args: argparse.Namespace, config: Config) -> int:
    user = UserConfig.load()
    places = []
    if user.keys.pop(args.provider, None) is not None:
        places.append(str(user.path))
    if args.provider in user.in_keyring:
        user.in_keyring.remove(args.provider)
        backend = system_keyring()
        if backend is not None:
            from keyring.errors import KeyringError

            with contextlib.suppress(KeyringError):  # already gone from the keyring
                backend.delete_password(KEYRING_SERVICE, args.provider)
        places.append("the system keyring")
    if not places:
        raise ConfigError(f"keys remove: no stored key for '{args.provider}' in {user.path}")
    user.save()
    print(f"removed the {args.provider} key from {' and '.join(places)}")
    return 0


def key_sources(config: Config) -> list[tuple[str, str, str, str]]:
    """(provider, usable, source, last four) for every provider that has a key somewhere or
    is configured, then the well-known hosts that have none."""
    user = UserConfig.load()
    in_keyring = user.keyring_keys()
    rows = []
    names = list(dict.fromkeys([*config.providers, *HOSTS]))
    for name in names:
        pconf = config.providers.get(name)
        host = HOSTS.get((pconf.host if pconf and pconf.host else None) or name)
        if host is None or (not host.key_env and pconf is None) or host.wire_api == "local":
            continue
        env = (pconf.api_key_env if pconf else None) or host.key_env
        if pconf is not None and pconf.api_key is not None:
            key, source = pconf.api_key.get_secret_value(), f"config file ({config.source})"
        elif env and os.environ.get(env):
            key, source = os.environ[env], f"environment (${env})"
        elif name in user.keys:
            key, source = user.keys[name], f"user config ({user.path})"
        elif name in in_keyring:
            key, source = in_keyring[name], "system keyring"
        else:
            if name in user.in_keyring:  # stored there, but no keyring answers here
                rows.append((name, "no", "system keyring (not available here)", ""))
                continue
            if host.key_required:
                hint = f"set ${env} or run turnout keys set {name}" if env else "no key"
                rows.append((name, "no", hint, ""))
            continue
        rows.append((name, "yes", source, _last4(key)))
    return rows


def cmd_keys_list(args: argparse.Namespace, config: Config) -> int:
    rows = key_sources(config)
    if not args.all:
        rows = [r for r in rows if r[1] == "yes"]
    if rows:
        table = [("PROVIDER", "USABLE", "KEY FROM", "KEY"), *rows]
        print(render_table(table, width=terminal_width(), optional=()))
    else:
        print("no provider keys: set one with turnout keys set PROVIDER (or *_API_KEY)")
    print(
        "gateway keys (for clients of turnout serve) are listed by: turnout gateway-keys list",
        file=sys.stderr,
    )
    return 0


def add_provider_key_commands(keys_sub: argparse._SubParsersAction, load: Load) -> None:
    setp = keys_sub.add_parser(
        "set",
        help="store a provider key in the system keyring or the user config (asked for, or "
        "read from stdin)",
        description="Store PROVIDER's API key in the system keyring when one is available "
        "(pip install 'turnout[keyring]' and a desktop keyring; TURNOUT_KEYRING=off to "
        "skip it), else in the user config file (owner-only); used when neither the config "
        "file nor the environment has one. The key is read at a hidden prompt, or from "
        "standard input: echo $KEY | turnout keys set groq",
    )
    setp.add_argument("provider", help="provider name, e.g. groq, openai, anthropic")
    setp.set_defaults(func=lambda args: cmd_keys_set(args, load(args)))
    listing = keys_sub.add_parser(
        "list", help="provider keys: usable or not, where each comes from, last four only"
    )
    listing.add_argument("--all", action="store_true", help="also the providers that have no key")
    listing.set_defaults(func=lambda args: cmd_keys_list(args, load(args)))
    remove = keys_sub.add_parser("remove", help="delete a stored provider key")
    remove.add_argument("provider")
    remove.set_defaults(func=lambda args: cmd_keys_remove(args, load(args)))


# --- aliases and the default model ---------------------------------------------------------


def _check_model(config: Config, model: str) -> None:
    from ..gateway import Gateway

    Gateway(config).router.resolve(model)  # NotFoundError with suggestions when unknown


def cmd_alias_set(args: argparse.Namespace, config: Config) -> int:
    if ":" in args.name:
        raise ConfigError(f"aliases set: an alias cannot hold ':' (got '{args.name}')")
    _check_model(config, args.model)
    user = UserConfig.load()
    user.aliases[args.name] = args.model
    user.save()
    print(f"{args.name} -> {args.model} (in {user.path})")
    return 0


def cmd_alias_list(args: argparse.Namespace, config: Config) -> int:
    from ..catalogue import Catalogue

    user = UserConfig.load()
    rows = [("ALIAS", "MODEL", "FROM")]
    for name, model in config.aliases.items():
        rows.append((name, model, "user config" if user.aliases.get(name) == model else "config"))
    for entry in Catalogue.default(config.models):
        rows.extend((alias, entry.id, "catalogue") for alias in entry.aliases)
    print(render_table(rows, width=terminal_width()))
    return 0


def cmd_alias_remove(args: argparse.Namespace, config: Config) -> int:
    user = UserConfig.load()
    if user.aliases.pop(args.name, None) is None:
        raise ConfigError(f"aliases remove: no alias '{args.name}' in {user.path}")
    user.save()
    print(f"removed alias {args.name}")
    return 0


def add_alias_commands(sub: argparse._SubParsersAction, load: Load) -> None:
    aliases = sub.add_parser("aliases", help="your own names for models (set, list, remove)")
    asub = aliases.add_subparsers(dest="aliases_command", required=True, metavar="ACTION")
    setp = asub.add_parser(
        "set", help="name a model: turnout aliases set fast groq:llama-3.1-8b-instant"
    )
    setp.add_argument("name")
    setp.add_argument("model", help="route, catalogue model or alias, or provider:model")
    setp.set_defaults(func=lambda args: cmd_alias_set(args, load(args)))
    listing = asub.add_parser("list", help="every alias: yours, the config's, the catalogue's")
    listing.set_defaults(func=lambda args: cmd_alias_list(args, load(args)))
    remove = asub.add_parser("remove", help="delete one of your aliases")
    remove.add_argument("name")
    remove.set_defaults(func=lambda args: cmd_alias_remove(args, load(args)))


def cmd_models_default(args: argparse.Namespace, config: Config) -> int:
    """Show the default model, or set the user's default."""
    from ..gateway import Gateway

    if not args.model:
        model = Gateway(config).router.default_model()
        user = UserConfig.load()
        source = (
            "$TURNOUT_DEFAULT_MODEL" if os.environ.get("TURNOUT_DEFAULT_MODEL")
            else "user config" if user.default_model == config.default_model and user.default_model
            else "config file" if config.default_model
            else "the first route" if config.routes
            else "built in"
        )  # fmt: skip
        print(f"{model} (from {source})")
        return 0
    _check_model(config, args.model)
    user = UserConfig.load()
    previous, user.default_model = user.default_model, args.model
    user.save()
    print(f"default model: {args.model} (in {user.path})")
    if config.default_model and config.default_model not in (previous, args.model):
        print(
            f"note: the config file's default_model ({config.default_model}) wins over it",
            file=sys.stderr,
        )
    return 0
