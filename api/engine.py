"""Runs per-observable work concurrently, within the request's deadline.

One failing observable never discards the others: each task's error is
kept beside its label and the finished results are returned as they are.
"""
import logging
from concurrent.futures import ThreadPoolExecutor, wait

from api.errors import RelayError, RequestTimeoutError

log = logging.getLogger(__name__)


class InternalError(RelayError):
    code = "internal error"


def run(ctx, tasks):
    """Run `tasks` [(label, callable)] with at most RELAY_CONCURRENCY at once.

    Returns [(label, result, error)] in task order; `error` is a RelayError
    or None. Work still running at the deadline is reported as a timeout.
    """
    if not tasks:
        return []
    if len(tasks) == 1:
        label, func = tasks[0]
        return [(label, *_call(label, func))]
    workers = min(ctx.settings.concurrency, len(tasks))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="relay")
    try:
        futures = [pool.submit(_call, label, func) for label, func in tasks]
        wait(futures, timeout=max(ctx.remaining(), 0))
        results = []
        for (label, _), future in zip(tasks, futures):
            if future.done():
                results.append((label, *future.result()))
            else:
                future.cancel()
                # The caller names the observable (error.subject), not the message.
                results.append((label, None, RequestTimeoutError(
                    f"no answer from {ctx.provider} within the relay's "
                    f"{ctx.settings.deadline:g} s deadline")))
        return results
    finally:
        # Stragglers end on their own per-call timeouts; nobody waits for them.
        pool.shutdown(wait=False, cancel_futures=True)


def _call(label, func):
    try:
        return func(), None
    except RelayError as error:
        return None, error
    except Exception:  # a bug must cost one observable, not the response
        log.exception("unexpected error while handling %s", label)
        return None, InternalError("unexpected error in the relay")
