"""``turnout gateway-keys create|list|update|revoke`` and ``turnout db upgrade``: the same
operations as the admin API, run against the configured database (and Redis, so a revocation
reaches every running replica at once)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import orjson
from pydantic import ValidationError

from ..config import Config
from ..errors import ConfigError
from .keys import KeySpec

__all__ = ["add_db_commands", "add_key_commands"]


def _spec(args: argparse.Namespace, *, update: bool) -> KeySpec:
    data: dict[str, Any] = {}
    if args.name is not None:
        data["name"] = args.name
    budget = {
        kind: getattr(args, f"budget_{kind}")
        for kind in ("daily", "monthly", "total")
        if getattr(args, f"budget_{kind}") is not None
    }
    # On update, 0 clears a limit; on create, 0 is simply no limit.
    if budget:
        data["budget"] = {k: (v or None) for k, v in budget.items()}
    for name in ("rpm", "tpm"):
        value = getattr(args, name)
        if value is not None:
            data[name] = value or None
    if args.model:
        data["models"] = args.model
    elif update and args.all_models:
        data["models"] = None
    try:
        return KeySpec.model_validate(data)
    except ValidationError as exc:
        # One line per mistake, named as the flag that carries it (never a traceback).
        problems = "; ".join(
            f"--{_FLAGS.get('.'.join(str(p) for p in err['loc']), err['loc'][0])}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"invalid key settings: {problems}") from None


_FLAGS = {
    "budget.daily": "budget-daily",
    "budget.monthly": "budget-monthly",
    "budget.total": "budget-total",
    "models": "model",
}


def _accounting(config: Config) -> Any:
    from .service import Accounting

    accounting = Accounting(config)
    if accounting.db is None:
        raise ConfigError(f"{config.source}: database_url is 'none': gateway keys need one")
    return accounting


async def _run(config: Config, args: argparse.Namespace) -> int:
    accounting = _accounting(config)
    try:
        # Keys live in one database: say which, so a key made against the wrong one (another
        # directory's default turnout.db) is noticed here rather than as a 401 later.
        fresh = await asyncio.to_thread(accounting.db._guard, accounting.db._stamped) is None
        created = " (created now)" if fresh else ""
        print(f"turnout gateway-keys: database {accounting.db.display_url}{created}",
              file=sys.stderr)  # fmt: skip
        await asyncio.to_thread(accounting.db.upgrade)
        accounting.migrated.set()
        action = args.keys_command
        if action == "create":
            key, secret = await accounting.create_key(_spec(args, update=False))
            shown = key.public(await accounting.spend(key))
            if args.json:
                print(orjson.dumps({**shown, "key": secret}).decode())
            else:
                print(f"created {key.id} ({key.name or 'unnamed'})")
                print(f"key: {secret}")
                print(
                    "Store it now: it is not shown again (only its hash is kept).", file=sys.stderr
                )
        elif action == "list":
            keys = await accounting.list_keys()
            shown_all = [k.public(await accounting.spend(k)) for k in keys]
            if args.json:
                print(orjson.dumps(shown_all).decode())
            else:
                _table(shown_all)
        elif action == "update":
            key = await accounting.update_key(args.id, _spec(args, update=True))
            print(orjson.dumps(key.public(await accounting.spend(key))).decode())
        elif action == "revoke":
            key = await accounting.revoke_key(args.id)
            print(f"revoked {key.id} ({key.name or 'unnamed'})")
    finally:
        await accounting.aclose()
    return 0


def _table(keys: list[dict[str, Any]]) -> None:
    rows = [("ID", "NAME", "KEY", "STATUS", "RPM", "TPM", "BUDGET D/M/T", "SPENT D/M/T", "MODELS")]

    def money(values: dict[str, Any]) -> str:
        return "/".join(
            "-" if values.get(k) is None else f"{values[k]:g}"
            for k in ("daily", "monthly", "total")
        )

    for k in keys:
        rows.append(
            (
                k["id"],
                k["name"],
                k["key_hint"],
                "revoked " + time.strftime("%Y-%m-%d", time.gmtime(k["revoked_at"]))
                if k["revoked"]
                else "active",
                str(k["rpm"] or "-"),
                str(k["tpm"] or "-"),
                money(k["budget"]),
                money(k.get("spend", {})),
                ",".join(k["models"]) if k["models"] is not None else "*",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _limits(parser: argparse.ArgumentParser, update: bool) -> None:
    clear = " (0 clears it)" if update else ""
    parser.add_argument("--name", help="a label for the key")
    parser.add_argument("--rpm", type=int, help=f"requests per minute{clear}")
    parser.add_argument("--tpm", type=int, help=f"tokens per minute{clear}")
    for kind in ("daily", "monthly", "total"):
        parser.add_argument(
            f"--budget-{kind}", type=float, metavar="USD", help=f"{kind} budget in USD{clear}"
        )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        help="allow this route or model (glob like 'openai:*'); repeat for more",
    )
    if update:
        parser.add_argument("--all-models", action="store_true", help="drop the allow-list")
    parser.add_argument("--json", action="store_true", help="print JSON")


def add_key_commands(
    keys_sub: argparse._SubParsersAction,
    load: Any,
    deprecated: str | None = None,
) -> None:
    """Add create/list/update/revoke under ``turnout gateway-keys``; ``load(args)`` gives the
    Config. With ``deprecated`` (the new spelling), each command prints a note pointing to it
    first, and ``list`` is left out (``turnout keys list`` lists provider keys now)."""

    def cmd(args: argparse.Namespace) -> int:
        if deprecated:
            print(
                f"turnout: 'turnout keys {args.keys_command}' is deprecated: "
                f"use '{deprecated} {args.keys_command}'",
                file=sys.stderr,
            )
        return asyncio.run(_run(load(args), args))

    def shown(text: str) -> dict[str, Any]:
        return {} if deprecated else {"help": text}  # deprecated spellings stay out of --help

    create = keys_sub.add_parser(
        "create", **shown("create a gateway key (the secret is shown once)")
    )
    _limits(create, update=False)
    create.set_defaults(func=cmd, keys_command="create")

    if not deprecated:
        listing = keys_sub.add_parser("list", help="list gateway keys with their limits and spend")
        listing.add_argument("--json", action="store_true", help="print JSON")
        listing.set_defaults(func=cmd, keys_command="list")

    update = keys_sub.add_parser("update", **shown("change a gateway key's limits"))
    update.add_argument("id")
    _limits(update, update=True)
    update.set_defaults(func=cmd, keys_command="update")

    revoke = keys_sub.add_parser(
        "revoke", **shown("revoke a gateway key, on every replica at once")
    )
    revoke.add_argument("id")
    revoke.set_defaults(func=cmd, keys_command="revoke")


def add_db_commands(sub: argparse._SubParsersAction, load: Any) -> None:
    def upgrade(args: argparse.Namespace) -> int:
        from .db import Database, database_url

        config = load(args)
        url = database_url(config)
        if url is None:
            raise ConfigError(f"{config.source}: database_url is 'none': nothing to upgrade")
        db = Database(url)
        try:
            fresh = db._guard(db._stamped) is None
            db.upgrade(args.revision)
            created = " (created now)" if fresh else ""
            print(f"{db!r} is at revision {db.current_revision()}{created}")
        finally:
            db.dispose()
        return 0

    db = sub.add_parser("db", help="the request log and key database")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    up = db_sub.add_parser("upgrade", help="apply the schema migrations (also done at start-up)")
    up.add_argument("revision", nargs="?", default="head")
    up.set_defaults(func=upgrade)
