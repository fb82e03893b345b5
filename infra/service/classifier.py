"""Pluggable choice of tier for requests that do not name one.

A classifier is any callable `messages -> tier name`. `KeywordClassifier` is a transparent default:
it looks at the latest user message for whole-word terms; applications with better signals (a
router model, the calling feature) pass their own callable.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence

from infra.service.protocol import Message

TierClassifier = Callable[[Sequence[Message]], str]

DEFAULT_ABSTRACTION_TERMS = (
    "industry", "industries", "similar businesses", "similar companies", "competitors", "benchmark",
    "benchmarks", "market", "across companies", "best practice", "best practices", "trend", "trends",
)


class KeywordClassifier:
    """Pick the tier whose terms appear most in the latest user message; `default` otherwise."""

    def __init__(self, rules: Mapping[str, Iterable[str]], *, default: str = "base") -> None:
        self.default = default
        self._patterns = {
            tier: re.compile(r"\b(" + "|".join(re.escape(t.lower()) for t in terms) + r")\b")
            for tier, terms in rules.items()
            if list(terms)
        }

    @classmethod
    def for_company(cls, company_terms: Iterable[str], *, default: str = "base") -> KeywordClassifier:
        """Company terms (product names, internal jargon) -> company; cross-business terms -> abstraction."""
        return cls({"company": list(company_terms), "abstraction": DEFAULT_ABSTRACTION_TERMS}, default=default)

    def __call__(self, messages: Sequence[Message]) -> str:
        text = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "").lower()
        best, hits = self.default, 0
        for tier, pattern in self._patterns.items():
            count = len(pattern.findall(text))
            if count > hits:
                best, hits = tier, count
        return best
