"""Running a function over items on a few threads, stopping them all at the first failure."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Cancelled(Exception):
    """Another worker failed (or the user interrupted): stop at the next chunk."""


def run_all(func: Callable[[T], R], items: list[T], parallel: int, stop: threading.Event) -> list[R]:
    """`func` over `items` on `parallel` threads, in order; the first failure stops the others."""
    if not items:
        return []
    pool = ThreadPoolExecutor(max(parallel, 1), thread_name_prefix="modelyard")
    futures: list[Future[R]] = []
    try:
        futures = [pool.submit(func, item) for item in items]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.exception() is not None for f in done):
            stop.set()
            for f in futures:
                f.cancel()
            wait(futures)
            errors = [e for f in futures if not f.cancelled() and (e := f.exception()) is not None]
            # The first real failure, not the Cancelled it caused in the other workers.
            raise next((e for e in errors if not isinstance(e, Cancelled)), errors[0])
        return [f.result() for f in futures]
    except BaseException:
        stop.set()  # also on Ctrl-C: running uploads stop at their next chunk
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
