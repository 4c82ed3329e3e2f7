"""The cost estimate from the config's price table, and the cached share in run totals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import simulator
from simulator.config import RunConfig
from simulator.cost import estimate_cost
from simulator.records import TokenCounts
from tests.conftest import MARCUS, FakeBackend


def test_cost_uses_each_roles_model_price_and_the_cached_rate() -> None:
    config = RunConfig.model_validate(
        {
            "therapist_model": "big",
            "patient_model": "small",
            "prices": {
                "big": {"prompt": 2.0, "completion": 8.0, "cached": 0.5},
                "small": {"prompt": 1.0, "completion": 2.0},
            },
        }
    )
    totals = {
        "therapist": TokenCounts(prompt_tokens=1_000_000, completion_tokens=100_000, cached_tokens=600_000),
        "patient": TokenCounts(prompt_tokens=500_000, completion_tokens=50_000, cached_tokens=500_000),
        "summarizer": TokenCounts(prompt_tokens=10**6, completion_tokens=10**6),  # no model, no price
    }
    # therapist: 0.4M * 2 + 0.6M * 0.5 + 0.1M * 8 = 1.9; patient (cached billed at the prompt rate): 0.5 + 0.1
    assert estimate_cost(totals, config) == pytest.approx(2.5)
    assert estimate_cost(totals, RunConfig()) is None


def test_cached_share() -> None:
    assert TokenCounts(prompt_tokens=800, cached_tokens=600).cached_share() == 0.75
    assert TokenCounts().cached_share() == 0.0


async def test_run_json_totals_show_the_cached_share(tmp_path: Path) -> None:
    """The fake backend reports 40 of every 100 prompt tokens as cached: run.json says 0.4."""
    config = RunConfig(out=tmp_path, run_id="r", max_turns=6)
    await simulator.run_series(simulator.load_plan(config, [MARCUS]), backend=FakeBackend())
    totals = json.loads((tmp_path / "r" / "run.json").read_text())["totals"]
    assert totals["prompt_tokens"] > 0 and totals["cached_tokens"] * 10 == totals["prompt_tokens"] * 4
    assert totals["cached_share"] == pytest.approx(0.4)
