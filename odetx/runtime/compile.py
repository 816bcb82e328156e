"""What ``torch.compile`` reports about the models it compiled."""

from __future__ import annotations


def graph_breaks() -> int:
    """Graph breaks torch.compile has met in this process so far."""
    from torch._dynamo.utils import counters  # importing dynamo costs ~1 s; only compiled runs ask

    return int(sum(counters["graph_break"].values()))
