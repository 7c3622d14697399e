"""Runs per-observable work concurrently, within the request's deadline.

One failing observable never discards the others: each task's error is
kept beside its label and the finished results are returned as they are.
Threads come from one pool per process that outlives requests: starting
fresh threads for every request cost more CPU than the upstream calls they
made (profiled with py-spy). The transport (api/http.py) ends every upstream
call by the deadline, so a straggler gives its thread back soon after.
"""
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

from api.errors import RelayError

log = logging.getLogger(__name__)

# Threads shared by all requests of this process (RELAY_CONCURRENCY bounds
# each request's share; several requests at once queue beyond this).
MAX_THREADS = 256

_executor = None
_executor_lock = threading.Lock()


class InternalError(RelayError):
    code = "internal error"


def executor():
    """The process-wide thread pool, created on first use."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=MAX_THREADS,
                                           thread_name_prefix="relay")
        return _executor


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
    batch = _Batch(tasks)
    pool = executor()
    for _ in range(min(ctx.settings.concurrency, len(tasks))):
        pool.submit(batch.work)
    batch.finished.wait(timeout=max(ctx.remaining(), 0))
    batch.stop = True   # tasks not started yet stay undone
    results = []
    for (label, _), outcome in zip(tasks, list(batch.outcomes)):
        if outcome is None:
            # The caller names the observable (error.subject), not the message.
            outcome = (None, ctx.late_error())
        results.append((label, *outcome))
    return results


class _Batch:
    """One request's tasks, taken in order by up to RELAY_CONCURRENCY workers."""

    def __init__(self, tasks):
        self.tasks = tasks
        self.outcomes = [None] * len(tasks)
        self.finished = threading.Event()
        self.stop = False
        self._next = 0
        self._done = 0
        self._lock = threading.Lock()

    def work(self):
        while not self.stop:
            with self._lock:
                index = self._next
                if index >= len(self.tasks):
                    return
                self._next += 1
            label, func = self.tasks[index]
            self.outcomes[index] = _call(label, func)
            with self._lock:
                self._done += 1
                if self._done == len(self.tasks):
                    self.finished.set()


def _call(label, func):
    try:
        return func(), None
    except RelayError as error:
        return None, error
    except Exception:  # a bug must cost one observable, not the response
        log.exception("unexpected error while handling %s", label)
        return None, InternalError("unexpected error in the relay")
