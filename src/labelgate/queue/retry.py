"""When a failed re-score job runs again, and when it is given up (dead-lettered).

Two kinds of failure, because CVAT does not redeliver a webhook: a save whose re-score is
dropped during an outage is never scored.

- *Transient*: the upstream (CVAT, Label Studio, the report store) is unreachable, timing out or
  answering 5xx (:class:`ConnectionError`, :class:`TimeoutError`, a database that cannot be
  reached). Retried with capped exponential backoff for ``window`` seconds after the job's first
  failure, so an outage of hours is ridden out and the job runs soon after the upstream is back.
- *Permanent*: anything else (404, refused credentials, bad data, a bug). Retrying cannot help
  much, so the job is dead-lettered after ``max_attempts`` attempts.

A dead job stays in the queue until ``labelgate queue retry`` requeues it.
"""

from __future__ import annotations

from dataclasses import dataclass


def is_transient(exc: BaseException) -> bool:
    """True for failures that an outage explains (worth retrying for hours)."""
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True  # includes labelgate's ConnectionFailed (unreachable, timeouts, 5xx)
    try:  # the report store down or its disk full: the same, on our side
        from sqlalchemy.exc import OperationalError
    except ImportError:  # pragma: no cover - sqlalchemy is a dependency
        return False
    return isinstance(exc, OperationalError)


@dataclass(frozen=True)
class RetryPolicy:
    """Capped exponential backoff over a window, then dead-letter.

    Attributes:
        backoff: seconds before the first retry; doubles with every attempt.
        backoff_max: the cap on one wait, so a recovered upstream is noticed within it.
        window: seconds after a job's first failure during which transient failures are retried.
        max_attempts: attempts after which a permanent failure dead-letters the job.
    """

    backoff: float = 5.0
    backoff_max: float = 300.0
    window: float = 24 * 3600.0
    max_attempts: int = 3

    def delay(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed attempt (1-based)."""
        exponent = min(max(attempts - 1, 0), 64)  # 2**64 * backoff is past any cap
        return float(min(self.backoff_max, self.backoff * 2.0**exponent))

    def next_run(
        self, transient: bool, attempts: int, first_failure: float, now: float
    ) -> float | None:
        """When the job runs again after a failure at ``now``; None = dead-letter it.

        Args:
            transient: the failure's kind (:func:`is_transient`).
            attempts: attempts made so far, the failed one included.
            first_failure: when the job first failed since it was queued or requeued.
            now: the time of this failure.
        """
        if transient:
            if now - first_failure >= self.window:
                return None
        elif attempts >= self.max_attempts:
            return None
        return now + self.delay(attempts)


def describe_error(exc: BaseException) -> str:
    """A failed job's error as kept with the job and logged: its type and message, redacted.

    Kept errors are listed by ``labelgate queue list`` and the logs, so URL credentials and secret
    values in an exception message (a CVAT host with a password) must not be stored.
    """
    from labelgate.security import redact

    return redact(f"{type(exc).__name__}: {exc}")
