"""The API tokens of the HTTP tests: a reader, an operator, the feed ``sohr`` and a metrics
token (what Prometheus scrapes with).

Each secret is long enough for the service's minimum; :data:`TOKENS` configures all four.
"""

from __future__ import annotations

from services.settings import Token

__all__ = ["FEED", "METRICS", "OPERATOR", "READER", "TOKENS"]

READER = "reader-token-0123456789abcdef01"
OPERATOR = "operator-token-0123456789abcdef"
FEED = "feed-sohr-token-0123456789abcdef"
METRICS = "metrics-token-0123456789abcdef0"
TOKENS = (
    Token(role="reader", secret=READER),
    Token(role="operator", secret=OPERATOR),
    Token(role="feed", secret=FEED, feed="sohr"),
    Token(role="metrics", secret=METRICS),
)
