"""List prices for Claude models, in USD per million tokens: the one place session costs come from.

Source: Anthropic's pricing page and the model catalog in Claude Code 2.1.332 (November 2026). Recheck them
against https://platform.claude.com/docs/en/about-claude/pricing before billing anyone with these figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from jada_pipelines.settings import ConfigError


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cache_write_5m: float
    cache_write_1h: float
    cache_read: float


PRICES: dict[str, Price] = {
    "claude-fable-5-2": Price(8, 40, 10, 16, 0.20),
    "claude-fable-5-1": Price(10, 50, 12.50, 20, 0.25),
    "claude-opus-5-5": Price(4, 20, 5, 8, 0.20),
    "claude-sonnet-5-5": Price(2, 10, 2.50, 4, 0.10),
    "claude-haiku-5-5": Price(0.10, 0.50, 0.125, 0.20, 0.01),
    "claude-opus-5": Price(5, 25, 6.25, 10, 0.50),
    "claude-sonnet-5": Price(2, 10, 2.50, 4, 0.20),
    "claude-haiku-4-5": Price(1, 5, 1.25, 2, 0.10),
}


@dataclass
class Usage:
    """Token counts summed over every call of a session."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0

    @property
    def cache_write_tokens(self) -> int:
        return self.cache_write_5m_tokens + self.cache_write_1h_tokens

    def add(self, usage) -> None:
        """Add one response's ``usage`` (an SDK ``Usage`` object)."""
        self.input_tokens += usage.input_tokens or 0
        self.output_tokens += usage.output_tokens or 0
        self.cache_read_tokens += usage.cache_read_input_tokens or 0
        written = usage.cache_creation_input_tokens or 0
        split = getattr(usage, "cache_creation", None)
        # Without the per-TTL breakdown every write is priced as a 5-minute write (the default TTL).
        one_hour = (split.ephemeral_1h_input_tokens or 0) if split is not None else 0
        self.cache_write_1h_tokens += one_hour
        self.cache_write_5m_tokens += written - one_hour


def price_for(model: str) -> Price:
    """The price of ``model``; a dated id such as ``claude-sonnet-5-5-20261001`` takes its family's price."""
    matches = [name for name in PRICES if model == name or model.startswith(name + "-")]
    if not matches:
        raise ConfigError(
            f"JADA_AGENT_MODEL={model!r} has no price in jada_pipelines/agents/prices.py; add its row "
            f"(known: {', '.join(PRICES)})."
        )
    return PRICES[max(matches, key=len)]


def cost_usd(model: str, usage: Usage) -> float:
    price = price_for(model)
    return (
        price.input * usage.input_tokens
        + price.output * usage.output_tokens
        + price.cache_write_5m * usage.cache_write_5m_tokens
        + price.cache_write_1h * usage.cache_write_1h_tokens
        + price.cache_read * usage.cache_read_tokens
    ) / 1_000_000
