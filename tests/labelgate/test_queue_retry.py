"""Retry policy: which failures an outage explains, and the capped backoff over the window."""

import pytest
from sqlalchemy.exc import OperationalError

from labelgate.errors import AuthenticationFailed, ConnectionFailed, NotFound, ValidationError
from labelgate.queue.retry import RetryPolicy, is_transient


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (ConnectionFailed("CVAT: job 1 failed with HTTP 503"), True),
        (ConnectionRefusedError(111, "refused"), True),
        (TimeoutError("read timed out"), True),
        (OperationalError("INSERT", {}, Exception("database or disk is full")), True),
        (NotFound("CVAT: job 1 not found (HTTP 404)"), False),
        (AuthenticationFailed("CVAT refused the token (HTTP 401)"), False),
        (ValidationError("target 'job:x' is not 'job:<id>'"), False),
        (ZeroDivisionError("a bug"), False),
    ],
)
def test_transient_failures_are_the_ones_an_outage_explains(exc, transient):
    assert is_transient(exc) is transient


def test_backoff_doubles_up_to_its_cap():
    policy = RetryPolicy(backoff=5, backoff_max=300)
    assert [policy.delay(n) for n in range(1, 10)] == [5, 10, 20, 40, 80, 160, 300, 300, 300]
    assert policy.delay(10_000) == 300  # no overflow far out


def test_next_run_within_the_window_or_attempts_else_dead():
    policy = RetryPolicy(backoff=5, backoff_max=300, window=3600, max_attempts=3)
    assert policy.next_run(True, 1, first_failure=100, now=100) == 105
    assert policy.next_run(True, 40, first_failure=100, now=3699) == 3999  # still in the window
    assert policy.next_run(True, 41, first_failure=100, now=3700) is None  # an hour is up
    assert policy.next_run(False, 2, first_failure=100, now=110) == 120
    assert policy.next_run(False, 3, first_failure=100, now=130) is None  # third attempt failed


def test_kept_job_errors_are_redacted():
    from labelgate.errors import ConnectionFailed
    from labelgate.queue.retry import describe_error

    exc = ConnectionFailed("https://admin:hunter22@cvat.example/api/jobs/3: 503")
    text = describe_error(exc)
    assert "hunter22" not in text
    assert text == "ConnectionFailed: https://admin:***@cvat.example/api/jobs/3: 503"
