"""Each strategy's choice on constructed statistics, the filters in front of them, and how a
request picks its strategy. Pure decisions: no request is sent."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from turnout import errors
from turnout.config import Config
from turnout.gateway import Gateway
from turnout.routing import Plan

HI = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]

# Three models with known prices (USD per million tokens), quality and windows.
MODELS = [
    {
        "id": "cheap:small",
        "input_price": 0.1,
        "output_price": 0.2,
        "quality": 0.5,
        "context_window": 4096,
        "capabilities": ["streaming", "json"],
    },
    {
        "id": "mid:medium",
        "input_price": 1.0,
        "output_price": 2.0,
        "quality": 0.8,
        "context_window": 32000,
        "capabilities": ["streaming", "json", "tools"],
    },
    {
        "id": "dear:large",
        "input_price": 10.0,
        "output_price": 30.0,
        "quality": 0.95,
        "context_window": 128000,
        "capabilities": ["streaming", "json", "tools", "vision"],
    },
]
IDS = ["cheap:small", "mid:medium", "dear:large"]


def gateway(strategy: str | None = None, rand: Any = None, **route: Any) -> Gateway:
    deployments = route.pop("deployments", IDS)
    config = Config.model_validate(
        {
            "providers": {
                p: {"host": "custom", "base_url": "http://127.0.0.1:9/v1"}
                for p in ("cheap", "mid", "dear")
            },
            "models": MODELS,
            "routes": [
                {"name": "r", "deployments": deployments, "strategy": strategy, **route},
            ],
            "routing": {"explore": 0.0, "cold_samples": 0},
            "server": {"preload_local": False},
        }
    )
    gw = Gateway(config)
    if rand is not None:
        gw.planner.rand = rand
    return gw


async def decide(gw: Gateway, **fields: Any) -> Plan:
    return await gw.plan({"model": "r", "messages": HI, **fields})


async def order(gw: Gateway, **fields: Any) -> list[str]:
    return [d.id for d in (await decide(gw, **fields)).deployments]


async def test_priority_keeps_the_route_order() -> None:
    plan = await decide(gateway("priority"))
    assert [d.id for d in plan.deployments] == IDS and plan.strategy == "priority"


async def test_default_strategy_is_priority_and_configurable() -> None:
    assert (await decide(gateway())).strategy == "priority"
    gw = gateway()
    gw.planner.settings = gw.planner.settings.model_copy(update={"default_strategy": "cost"})
    assert (await decide(gw)).strategy == "cost"


async def test_manual_uses_exactly_the_named_deployment() -> None:
    gw = gateway("manual")
    assert await order(gw) == ["cheap:small"]
    assert await order(gw, turnout={"deployment": "dear:large"}) == ["dear:large"]
    with pytest.raises(errors.BadRequestError, match="not available in route 'r'"):
        await decide(gw, turnout={"deployment": "nope:x"})


async def test_round_robin_rotates() -> None:
    gw = gateway("round_robin")
    firsts = [(await order(gw))[0] for _ in range(6)]
    assert firsts == IDS + IDS
    assert await order(gw) == IDS  # the rest follow as fallbacks


async def test_weighted_follows_the_weights() -> None:
    deployments = [
        {"model": "cheap:small", "weight": 3},
        {"model": "mid:medium", "weight": 1},
        {"model": "dear:large", "weight": 0},
    ]
    gw = gateway("weighted", rand=random.Random(7).random, deployments=deployments)
    firsts = Counter([(await order(gw))[0] for _ in range(2000)])
    assert firsts["dear:large"] == 0  # weight 0: a fallback only
    assert 0.70 < firsts["cheap:small"] / 2000 < 0.80
    assert (await order(gw))[-1] == "dear:large"


async def test_least_busy_prefers_fewest_in_flight() -> None:
    gw = gateway("least_busy")
    gw.state.stats("cheap:small").in_flight = 5
    gw.state.stats("mid:medium").in_flight = 2
    gw.state.stats("dear:large").in_flight = 3
    assert await order(gw) == ["mid:medium", "dear:large", "cheap:small"]


async def test_cost_cheapest_first_unknown_prices_last() -> None:
    deployments = ["dear:large", "mid:medium", "cheap:small", "cheap:unpriced"]
    gw = gateway("cost", deployments=deployments)
    assert await order(gw) == ["cheap:small", "mid:medium", "dear:large", "cheap:unpriced"]


async def test_quality_best_first() -> None:
    assert await order(gateway("quality")) == ["dear:large", "mid:medium", "cheap:small"]


async def test_performance_ranks_by_measured_ttft_for_streams_latency_otherwise() -> None:
    gw = gateway("performance")
    for dep, ttft, latency in [
        ("cheap:small", 0.9, 1.0),
        ("mid:medium", 0.2, 3.0),
        ("dear:large", 0.5, 2.0),
    ]:
        s = gw.state.stats(dep)
        s.ttft, s.latency, s.samples = ttft, latency, 10
    assert await order(gw, stream=True) == ["mid:medium", "dear:large", "cheap:small"]
    assert await order(gw) == ["cheap:small", "dear:large", "mid:medium"]


async def test_performance_explores_cold_deployments_first() -> None:
    gw = gateway("performance")
    gw.planner.settings = gw.planner.settings.model_copy(update={"cold_samples": 3})
    for dep in ("cheap:small", "mid:medium"):
        s = gw.state.stats(dep)
        s.latency, s.samples = 0.1, 5
    assert (await order(gw))[0] == "dear:large"  # never measured: try it
    gw.state.stats("dear:large").in_flight = 3  # already being measured: no stampede
    assert (await order(gw))[0] != "dear:large"
    gw.state.stats("dear:large").in_flight = 0
    gw.state.stats("dear:large").samples = 3
    gw.state.stats("dear:large").latency = 9.0
    assert (await order(gw))[0] != "dear:large"


async def test_performance_explore_share_puts_another_first() -> None:
    gw = gateway("performance", rand=lambda: 0.0)  # every draw explores
    gw.planner.settings = gw.planner.settings.model_copy(update={"explore": 0.1})
    for dep, latency in [("cheap:small", 0.1), ("mid:medium", 0.2), ("dear:large", 0.3)]:
        s = gw.state.stats(dep)
        s.latency, s.samples = latency, 10
    assert (await order(gw))[0] == "mid:medium"


async def test_balanced_is_sixty_forty_cost_quality_and_configurable() -> None:
    # cost scores (cheapest 1): small 1, medium ~0.94, large 0; quality: 0, ~0.67, 1
    assert (await order(gateway("balanced")))[0] == "mid:medium"
    cost_heavy = gateway("balanced", balance={"cost": 1.0, "quality": 0.0})
    assert (await order(cost_heavy))[0] == "cheap:small"
    quality_heavy = gateway("balanced", balance={"cost": 0.1, "quality": 0.9})
    assert (await order(quality_heavy))[0] == "dear:large"


async def test_ab_split_by_percentage() -> None:
    deployments = [{"model": "cheap:small", "weight": 90}, {"model": "mid:medium", "weight": 10}]
    gw = gateway("ab", rand=random.Random(3).random, deployments=deployments)
    arms = Counter([(await order(gw))[0] for _ in range(2000)])
    assert 0.87 < arms["cheap:small"] / 2000 < 0.93
    assert await order(gw) in (["cheap:small", "mid:medium"], ["mid:medium", "cheap:small"])


async def test_ab_sticky_gives_a_caller_the_same_arm() -> None:
    deployments = [{"model": "cheap:small", "weight": 50}, {"model": "mid:medium", "weight": 50}]
    gw = gateway("ab", sticky=True, deployments=deployments)
    for caller in ("alice", "bob", "carol"):
        arms = {(await order(gw, user=caller))[0] for _ in range(20)}
        assert len(arms) == 1
    spread = Counter([(await order(gw, user=f"user-{i}"))[0] for i in range(400)])
    assert 0.4 < spread["cheap:small"] / 400 < 0.6
    # turnout.caller beats the user field
    a = (await order(gw, user="x", turnout={"caller": "alice"}))[0]
    assert a == (await order(gw, user="alice"))[0]


async def test_task_aware_puts_the_tasks_deployments_first() -> None:
    deployments = [
        {"model": "cheap:small", "tasks": ["general_chat"]},
        {"model": "mid:medium", "tasks": ["math_reasoning"]},
        {"model": "dear:large", "tasks": ["code_generation", "math_reasoning"]},
    ]
    gw = gateway("task", deployments=deployments)
    plan = await decide(gw, turnout={"task": "code_generation"})
    assert [d.id for d in plan.deployments] == ["dear:large", "cheap:small", "mid:medium"]
    assert plan.task == "code_generation"
    assert await order(gw, turnout={"task": "math_reasoning"}) == [
        "mid:medium",
        "dear:large",
        "cheap:small",
    ]


async def test_auto_picks_within_the_task_by_the_callers_priority() -> None:
    deployments = [
        {"model": "cheap:small", "tasks": ["general_chat"]},
        {"model": "mid:medium", "tasks": ["code_generation"]},
        {"model": "dear:large", "tasks": ["code_generation"]},
    ]
    gw = gateway("auto", deployments=deployments)
    code = {"task": "code_generation"}
    assert (await order(gw, turnout={**code, "priority": "cost"}))[0] == "mid:medium"
    assert (await order(gw, turnout={**code, "priority": "quality"}))[0] == "dear:large"
    # a task no deployment declares: the priority over everything
    assert (await order(gw, turnout={"task": "summarisation", "priority": "cost"}))[0] == (
        "cheap:small"
    )
    s = gw.state.stats("dear:large")
    s.latency, s.samples = 0.05, 10
    gw.state.stats("mid:medium").latency, gw.state.stats("mid:medium").samples = 2.0, 10
    assert (await order(gw, turnout={**code, "priority": "speed"}))[0] == "dear:large"


async def test_request_strategy_overrides_the_route() -> None:
    gw = gateway("priority")
    plan = await decide(gw, turnout={"strategy": "quality"})
    assert plan.strategy == "quality" and plan.deployments[0].id == "dear:large"


async def test_unknown_strategy_in_the_body_is_a_400() -> None:
    with pytest.raises(errors.BadRequestError, match="turnout.strategy"):
        await decide(gateway(), turnout={"strategy": "fastest"})


# --- filters ---------------------------------------------------------------------------------


async def test_capability_filter_drops_models_without_tools() -> None:
    plan = await decide(gateway("cost"), tools=TOOLS)
    assert [d.id for d in plan.deployments] == ["mid:medium", "dear:large"]
    assert plan.dropped == [("cheap:small", "no tools support")]


async def test_vision_and_json_needs() -> None:
    image = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        }
    ]
    assert await order(gateway(), messages=image) == ["dear:large"]
    assert await order(gateway(), response_format={"type": "json_object"}) == IDS


async def test_context_filter_uses_prompt_estimate_plus_max_output() -> None:
    long = [{"role": "user", "content": "word " * 4000}]  # about 5,000 tokens
    plan = await decide(gateway(), messages=long)
    assert [d.id for d in plan.deployments] == ["mid:medium", "dear:large"]
    assert "context window 4096" in plan.dropped[0][1]
    # a small prompt with a large max output does not fit the small model either
    assert await order(gateway(), max_tokens=8000) == ["mid:medium", "dear:large"]


async def test_nothing_fits_is_a_clear_400() -> None:
    huge = [{"role": "user", "content": "word " * 150_000}]
    with pytest.raises(errors.ContextWindowExceededError, match="no deployment of 'r'"):
        await decide(gateway(), messages=huge)
    gw = gateway(deployments=["cheap:small"])
    with pytest.raises(errors.BadRequestError, match="no tools support") as info:
        await decide(gw, tools=TOOLS)
    assert info.value.code == "no_capable_deployment"


async def test_budget_hook_filters_and_can_refuse() -> None:
    gw = gateway("cost")
    gw.planner.add_filter(lambda d, req, needs: "over budget" if d.provider == "cheap" else None)
    plan = await decide(gw)
    assert plan.deployments[0].id == "mid:medium"
    assert ("cheap:small", "over budget") in plan.dropped


async def test_health_filter_drops_cooling_deployments_unless_all_are() -> None:
    gw = gateway("priority")
    gw.state.stats("cheap:small").open_until = gw.state.clock() + 60
    plan = await decide(gw)
    assert [d.id for d in plan.deployments] == ["mid:medium", "dear:large"]
    assert ("cheap:small", "cooling down") in plan.dropped
    for dep in IDS:
        gw.state.stats(dep).open_until = gw.state.clock() + 60
    assert await order(gw) == IDS  # everyone cooling down: try anyway rather than refuse


async def test_manual_ignores_cooldown_but_not_capability() -> None:
    gw = gateway("manual")
    gw.state.stats("dear:large").open_until = gw.state.clock() + 60
    assert await order(gw, turnout={"deployment": "dear:large"}) == ["dear:large"]
    with pytest.raises(errors.BadRequestError, match="not available"):
        await decide(gw, tools=TOOLS, turnout={"deployment": "cheap:small"})


async def test_drop_params_keeps_a_model_without_the_capability() -> None:
    config = {
        "providers": {"cheap": {"host": "custom", "base_url": "http://127.0.0.1:9/v1"}},
        "models": MODELS,
        "routes": [{"name": "r", "deployments": ["cheap:small"]}],
        "drop_params": True,
    }
    gw = Gateway(Config.model_validate(config))
    assert await order(gw, tools=TOOLS) == ["cheap:small"]
    with pytest.raises(errors.BadRequestError, match="drop_params: true"):
        await decide(gateway(deployments=["cheap:small"]), tools=TOOLS)


def test_every_strategy_name_has_one_implementation() -> None:
    from turnout.config import STRATEGIES as NAMES
    from turnout.routing import STRATEGIES

    assert list(STRATEGIES) == list(NAMES)
    assert all(STRATEGIES[name].name == name for name in NAMES)
