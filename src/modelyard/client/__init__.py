"""The Python client of a modelyard registry: push folders as versions, get, search, download.

    from modelyard.client import Registry

    with Registry("http://127.0.0.1:8000", token="myd_…") as registry:
        result = registry.push("out/", "support-bot", params={"lr": 3e-4}, alias="staging")
        registry.download(result.ref, "/tmp/support-bot")
"""

from __future__ import annotations

from modelyard.client.errors import ClientError, IntegrityError, TransferError, UsageError
from modelyard.client.registry import DownloadResult, PushResult, Registry

__all__ = ["ClientError", "DownloadResult", "IntegrityError", "PushResult", "Registry", "TransferError", "UsageError"]
