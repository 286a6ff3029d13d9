"""The process's Prometheus metric families, in their own registry (one per app).

(Being written: see the ops helper.)
"""

from __future__ import annotations


class Metrics:
    """Counters and histograms for HTTP requests, GraphQL operations and errors."""
