"""``turnout models``: what this gateway can serve (routes, then catalogue models whose provider
has its key), the whole catalogue with ``--all`` and the reason each other model cannot be
used, or, with ``--live``, what one provider says it serves."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from ..config import CAPABILITIES, Config
from .table import render_table, terminal_width

__all__ = ["add_models_command"]


def _price(value: float | None) -> str:
    return "?" if value is None else f"{value:g}"


async def _live(config: Config, provider: str) -> int:
    """What one provider serves, asked of the provider itself (``keyhealth.live_listing``:
    its model listing, or the richer reader its host row names)."""
    from ..catalogue import Catalogue
    from ..deployment import resolve_deployment
    from ..http import HttpPool
    from ..keyhealth import live_listing

    d = resolve_deployment(f"{provider}:-", config, Catalogue.default(config.models))
    http = HttpPool()
    try:
        table = await live_listing(d, http, config.key_health.timeout)
    finally:
        await http.aclose()
    print(render_table(table, width=terminal_width()))
    return 0


def cmd_models(args: argparse.Namespace, config: Config) -> int:
    import orjson

    from ..gateway import Gateway

    if args.by:
        print("turnout: --by is deprecated: use --provider", file=sys.stderr)
        args.provider = args.provider or args.by
    if args.live:
        if not args.provider:
            print(
                "turnout models: --live needs --provider NAME, the provider to ask "
                "(see turnout models --help)",
                file=sys.stderr,
            )
            return 2
        return asyncio.run(_live(config, args.provider))
    gateway = Gateway(config)
    entries = gateway.catalogue.query(
        capabilities=args.capability,
        tags=args.tag,
        provider=args.provider,
        max_input_price=args.max_input_price,
        max_output_price=args.max_output_price,
        min_context=args.min_context,
    )
    filtered = any(
        v not in (None, [])
        for v in (args.capability, args.tag, args.provider, args.max_input_price,
                  args.max_output_price, args.min_context)
    )  # fmt: skip
    why_not = {n: why for n, e, why in gateway.model_status()}
    routes = [] if filtered else gateway.router.routes()
    shown = [e for e in entries if args.all or why_not.get(e.id) is None]
    hidden = len(entries) - len(shown)
    if args.json:
        listing = {
            "models": [{**e.to_dict(), "usable_reason": why_not.get(e.id)} for e in shown],
            "routes": [
                {
                    "name": r.name,
                    "deployments": [d.id for d in r.deployments],
                    "usable_reason": why_not.get(r.name),
                }
                for r in routes
            ],
        }
        print(orjson.dumps(listing, option=orjson.OPT_INDENT_2).decode())
        return 0
    width = terminal_width()
    if routes:
        rows = [("ROUTE", "DEPLOYMENTS", *(("UNUSABLE BECAUSE",) if args.all else ()))]
        for route in routes:
            chain = " -> ".join(d.id for d in route.deployments)
            rows.append(
                (route.name, chain, *((why_not.get(route.name) or "",) if args.all else ()))
            )
        print(render_table(rows, width=width))
        print()
    header = ("MODEL", "ALIASES", "CONTEXT", "$/M IN", "$/M OUT", "CAPABILITIES", "MAX OUT", "TAGS")
    rows = [(*header, *(("UNUSABLE BECAUSE",) if args.all else ()))]
    for e in shown:
        rows.append(
            (
                e.id + ("" if e.price_verified is not False else " *"),
                ",".join(e.aliases),
                f"{e.context_window:,}" if e.context_window else "",
                _price(e.input_price),
                _price(e.output_price),
                ",".join(sorted(e.capabilities)),
                f"{e.max_output:,}" if e.max_output else "",
                ",".join(sorted(e.tags)),
                *((why_not.get(e.id) or "",) if args.all else ()),
            )
        )
    if len(rows) > 1:
        # Narrow terminals lose TAGS, MAX OUT, then CAPABILITIES, then ALIASES.
        print(render_table(rows, width=width, optional=(7, 6, 5, 1)))
    else:
        print("no catalogue model matches" + (" and can be used here" if hidden else ""))
    if any(e.price_verified is False for e in shown):
        print("* price not confirmed at its source (turnout models --json: price_note)")
    if hidden:
        print(
            f"{hidden} more catalogue model(s) need a key or an extra: "
            "`turnout models --all` lists them with the reason",
            file=sys.stderr,
        )
    if args.provider and not entries:
        print(
            f"no catalogue models for provider '{args.provider}': "
            f"`turnout models --provider {args.provider} --live` asks it what it serves",
            file=sys.stderr,
        )
    return 0


def add_models_command(
    sub: argparse._SubParsersAction, load: Callable[[argparse.Namespace], Config]
) -> None:
    models = sub.add_parser(
        "models",
        help="list what can be served: routes, then catalogue models (USD per million tokens)",
        description="Routes, then the catalogue models this gateway can use now (their "
        "provider has a key). Prices are USD per million tokens; * marks a price not "
        "confirmed at its source.",
    )
    models.add_argument(
        "--all",
        action="store_true",
        help="the whole catalogue, with the reason each unusable model cannot be used",
    )
    models.add_argument("--provider", "-p", help="only this provider's models, e.g. groq")
    models.add_argument(
        "--live",
        action="store_true",
        help="ask --provider itself what it serves (its model listing, with what its host "
        "reports beyond names, such as sandbox flags)",
    )
    models.add_argument("--by", help=argparse.SUPPRESS)  # deprecated spelling of --provider
    models.add_argument(
        "--capability",
        action="append",
        default=[],
        choices=CAPABILITIES,
        help="only models with this capability; repeat for several (default: any)",
    )
    models.add_argument(
        "--tag", action="append", default=[], help="only models with this tag (default: any)"
    )
    models.add_argument(
        "--max-input-price", type=float, metavar="USD", help="per million input tokens, at most"
    )
    models.add_argument(
        "--max-output-price", type=float, metavar="USD", help="per million output tokens, at most"
    )
    models.add_argument(
        "--min-context", type=int, metavar="TOKENS", help="context window, at least"
    )
    models.add_argument("--json", action="store_true", help="print JSON with every field")
    models.set_defaults(func=lambda args: cmd_models(args, load(args)))
    msub = models.add_subparsers(dest="models_command", metavar="default", required=False)
    default = msub.add_parser(
        "default",
        help="show the default model, or set yours: turnout models default MODEL",
    )
    default.add_argument(
        "model", nargs="?", help="route, catalogue model or alias, or provider:model"
    )

    def run_default(args: argparse.Namespace) -> int:
        from .user import cmd_models_default

        return cmd_models_default(args, load(args))

    default.set_defaults(func=run_default)
