"""Scale-out queue on Redis + RQ, with the durable queue's semantics.

- ``enqueue`` is idempotent per delivery id (remembered for ``retention`` seconds).
- A re-score request is one RQ job scheduled ``debounce`` seconds ahead (RQ's scheduled-job
  registry). Requests for the same (name, system, target) while that job is still scheduled push
  its time back (never past ``first event + max_wait``) and count as ``coalesced``; one arriving
  after it left the schedule starts a new job, so work is never folded into a run that already
  read its data.
- Any number of ``labelgate worker`` processes, on any machine that reaches Redis, run the jobs
  (one of them also runs RQ's scheduler). A worker renews the running job's entry in RQ's started
  registry every ``lease / 3`` seconds (:class:`LeasedWorker`); a job whose worker died is retried
  by RQ's abandoned-job clean-up once that entry is ``lease`` seconds old (up to
  ``ABANDONED_RETRIES`` times).
- A failing handler is retried by the worker's :class:`~labelgate.queue.retry.RetryPolicy` (RQ
  schedules each retry); a job it gives up is *dead*: it stays in RQ's failed registry until
  :meth:`RedisQueue.retry_dead` requeues it.

Handlers are registered in the worker process with :func:`set_handlers`; the RQ job itself only
names :func:`perform` and the job's key.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from labelgate.errors import ConnectionFailed, MissingDependency, ValidationError
from labelgate.queue.durable import Job
from labelgate.queue.retry import RetryPolicy, describe_error, is_transient

PREFIX = "labelgate:queue"
ABANDONED_RETRIES = 5  # reruns of a job whose worker died (RQ's retries_left budget)

_HANDLERS: dict[str, Callable[[Job], Any]] = {}
_WORKER_QUEUE: list[RedisQueue] = []  # the worker process's configured queue (policy, lease)

# One round trip for the common cases (a redelivery, or an event folded into a waiting job).
# KEYS: delivery key, pending key, scheduled registry, info key prefix
# ARGV: check delivery ("1"/"0"), new due time (int seconds, RQ's resolution), payload JSON,
#       delivery TTL, may coalesce ("1"/"0"), max wait in seconds ("" = none)
# Returns {"duplicate", id} | {"coalesced", id} | {"create", ""}; "create" reserves the delivery.
_ENQUEUE = """
if ARGV[1] == '1' then
  local seen = redis.call('GET', KEYS[1])
  if seen then return {'duplicate', seen} end
end
if ARGV[5] == '1' then
  local id = redis.call('GET', KEYS[2])
  if id and redis.call('ZSCORE', KEYS[3], id) then
    local due = tonumber(ARGV[2])
    local first = tonumber(redis.call('HGET', KEYS[4] .. id, 'first') or '')
    if ARGV[6] ~= '' and first then
      due = math.min(due, math.ceil(first + tonumber(ARGV[6])))
    end
    redis.call('ZADD', KEYS[3], 'XX', due, id)
    redis.call('HINCRBY', KEYS[4] .. id, 'events', 1)
    redis.call('HSET', KEYS[4] .. id, 'payload', ARGV[3])
    if ARGV[1] == '1' then redis.call('SET', KEYS[1], id, 'EX', ARGV[4]) end
    return {'coalesced', id}
  end
end
if ARGV[1] == '1' then redis.call('SET', KEYS[1], '', 'EX', ARGV[4]) end
return {'create', ''}
"""

# KEYS: pending key, info key. ARGV: job id. Releases the pending slot if it is still ours.
_START = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return redis.call('HGETALL', KEYS[2])
"""


def set_handlers(
    handlers: dict[str, Callable[[Job], Any]], queue: RedisQueue | None = None
) -> None:
    """Register job name → handler for :func:`perform` in this (worker) process.

    Args:
        queue: the worker's queue, whose retry policy and retention :func:`perform` applies
            (default: a queue with the default settings per job).
    """
    _HANDLERS.clear()
    _HANDLERS.update(handlers)
    _WORKER_QUEUE[:] = [queue] if queue is not None else []


def _modules() -> tuple[Any, Any]:
    try:
        import redis
        import rq
    except ImportError as exc:  # pragma: no cover - both are dependencies
        raise MissingDependency(f"the Redis queue needs redis and rq: {exc}") from exc
    return redis, rq


class RedisQueue:
    """Re-score jobs in Redis, run by RQ workers.

    Args:
        url: ``redis://host:port/db`` (or ``rediss://``).
        name: the RQ queue name.
        lease: seconds before a dead worker's job is run again (workers renew it meanwhile).
        policy: retries and dead-lettering (applied by the worker that runs the job).
        retention: seconds delivery ids and finished jobs' results are kept.
    """

    def __init__(
        self,
        url: str,
        name: str = "labelgate",
        *,
        lease: float = 300.0,
        policy: RetryPolicy | None = None,
        retention: float = 7 * 24 * 3600.0,
    ) -> None:
        redis, rq = _modules()
        self.url = url
        self.name = name
        self.lease = lease
        self.policy = policy or RetryPolicy()
        self.retention = retention
        self.redis = redis.Redis.from_url(url)
        self.rq = rq.Queue(name, connection=self.redis)
        self._enqueue_script = self.redis.register_script(_ENQUEUE)
        self._start = self.redis.register_script(_START)

    # -- keys -------------------------------------------------------------------------------

    def _pending_key(self, name: str, system: str, target: str) -> str:
        return f"{PREFIX}:{self.name}:pending:{name}:{system}:{target}"

    def _info_prefix(self) -> str:
        return f"{PREFIX}:{self.name}:info:"

    def _stats_key(self) -> str:
        return f"{PREFIX}:{self.name}:stats"

    def _retrying_key(self) -> str:
        """The set of jobs waiting for a retry after a failed attempt."""
        return f"{PREFIX}:{self.name}:retrying"

    def where(self) -> str:
        """The server, without credentials (for messages)."""
        scheme, _, rest = self.url.partition("://")
        return f"{scheme}://{rest.rsplit('@', 1)[-1]}"

    def ping(self) -> None:
        """Check that Redis answers.

        Raises:
            ConnectionFailed: it does not (names the server, never the password).
        """
        import redis

        try:
            self.redis.ping()
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            raise ConnectionFailed(
                f"Redis queue at {self.where()} is unreachable ({type(exc).__name__}); "
                "is redis-server running?"
            ) from None

    # -- producer side ----------------------------------------------------------------------

    def enqueue(
        self,
        name: str,
        system: str,
        target: str,
        payload: dict[str, Any] | None = None,
        *,
        debounce: float = 0.0,
        max_wait: float | None = None,
        delivery: str | None = None,
        now: float | None = None,
    ) -> tuple[str | None, str]:
        """Queue (or merge into) a job. Returns (job id, "queued" | "coalesced" | "duplicate").

        Args:
            debounce: quiet seconds after the last event before the job is due.
            max_wait: the job is due at most this long after its first event (None: no limit).
        """
        t = time.time() if now is None else now
        body = json.dumps(payload or {})
        dkey = f"{PREFIX}:{self.name}:delivery:{delivery}" if delivery is not None else ""
        pending = self._pending_key(name, system, target)
        wait = debounce if max_wait is None else min(debounce, max_wait)
        due = int(t + wait + 0.999)  # RQ schedules in whole seconds; never run early

        def attempt(check_delivery: bool) -> tuple[str, str]:
            outcome, job_id = self._enqueue_script(
                keys=[dkey, pending, self.rq.scheduled_job_registry.key, self._info_prefix()],
                args=[
                    "1" if check_delivery else "0",
                    due,
                    body,
                    int(self.retention),
                    int(wait > 0),
                    "" if max_wait is None else float(max_wait),
                ],
            )
            return outcome.decode(), job_id.decode()

        outcome, job_id = attempt(bool(dkey))
        if outcome != "create":
            return (job_id or None), outcome
        try:
            # One creator at a time per target (across every web process), so two events
            # arriving together cannot both start a job; under the lock, look once more.
            with self.redis.lock(
                pending + ":lock",
                timeout=30,
                sleep=0.002,  # the default 0.1 s poll would be the latency under a burst
                blocking_timeout=30,
            ):
                outcome, job_id = attempt(False)
                if outcome == "create":
                    job_id, outcome = (
                        self._create(name, system, target, body, wait, due, t),
                        "queued",
                    )
        except BaseException:
            if dkey:  # not queued: a retry of this delivery must not be a duplicate
                self.redis.delete(dkey)
            raise
        if dkey:
            self.redis.set(dkey, job_id, ex=int(self.retention))
        return job_id, outcome

    def _create(
        self, name: str, system: str, target: str, body: str, debounce: float, due: int, t: float
    ) -> str:
        """A new RQ job for the target, scheduled at ``due`` when debounced (first event ``t``)."""
        from rq import Retry

        pending = self._pending_key(name, system, target)
        seq = self.redis.incr(self._stats_key() + ":seq")
        job_id = f"lg-{name.replace('.', '_')}-{int(time.time() * 1000)}-{seq}"
        self.redis.hset(
            self._info_prefix() + job_id,
            mapping={
                "name": name,
                "system": system,
                "target": target,
                "payload": body,
                "events": 1,
                "attempts": 0,
                "first": t,
            },
        )
        self.redis.set(pending, job_id)
        kwargs: dict[str, Any] = {
            "job_id": job_id,
            # The budget for reruns after a worker died; failures are retried by `perform`.
            "retry": Retry(max=ABANDONED_RETRIES, interval=[1]),
            "job_timeout": 3600,
            "result_ttl": int(self.retention),
            "failure_ttl": 10 * 365 * 24 * 3600,  # dead jobs wait for `labelgate queue retry`
            "description": f"{name} {system} {target}",
        }
        args = (self.url, self.name, job_id, pending)
        if debounce > 0:
            when = datetime.fromtimestamp(due, tz=timezone.utc)
            self.rq.enqueue_at(when, "labelgate.queue.redis_queue.perform", *args, **kwargs)
        else:
            self.rq.enqueue("labelgate.queue.redis_queue.perform", *args, **kwargs)
        return job_id

    # -- worker side ------------------------------------------------------------------------

    def start(self, job_id: str, pending: str) -> Job:
        """Release the job's pending slot (new events start a new job) and read its state."""
        raw = self._start(keys=[pending, self._info_prefix() + job_id], args=[job_id])
        self.redis.srem(self._retrying_key(), job_id)
        info = {k.decode(): v.decode() for k, v in zip(raw[::2], raw[1::2], strict=True)}
        if not info:
            raise LookupError(f"queue job {job_id}: its state is gone from Redis")
        attempts = int(self.redis.hincrby(self._info_prefix() + job_id, "attempts", 1))
        return Job(
            id=0,
            name=info["name"],
            system=info["system"],
            target=info["target"],
            payload=json.loads(info["payload"]),
            attempts=attempts,
            events=int(info["events"]),
        )

    def record(self, outcome: str, seconds: float) -> None:
        pipe = self.redis.pipeline()
        pipe.hincrby(self._stats_key(), outcome, 1)
        pipe.hincrbyfloat(self._stats_key(), f"{outcome}_seconds", seconds)
        pipe.execute()

    def _failed(self, job_id: str, exc: Exception) -> None:
        """Apply the retry policy to a failed run of ``job_id`` (RQ then retries or keeps it)."""
        from rq import get_current_job

        info = self._info_prefix() + job_id
        t = time.time()
        raw = self.redis.hmget(info, ["attempts", "first_failed"])
        rq_job = get_current_job()
        if raw[0] is None:  # its state is gone: nothing to run again
            due = None
        else:
            first = float(raw[1]) if raw[1] is not None else t
            due = self.policy.next_run(is_transient(exc), int(raw[0]), first, t)
            self.redis.hset(info, mapping={"error": describe_error(exc), "first_failed": first})
        if due is None:
            self.redis.srem(self._retrying_key(), job_id)
            if rq_job is not None:
                rq_job.retries_left = 0  # RQ moves it to the failed registry: dead
        else:
            self.redis.sadd(self._retrying_key(), job_id)
            if rq_job is not None:  # one more retry, after the policy's delay
                rq_job.retries_left = (rq_job.retries_left or 0) + 1
                rq_job.retry_intervals = [max(1, math.ceil(due - t))]

    def retry_dead(self, job_id: str | None = None) -> list[str]:
        """Requeue one dead job (or every one, with None) with a fresh retry budget.

        Raises:
            ValidationError: ``job_id`` is not in the queue or not dead.
        """
        from rq.job import Job as RqJob

        registry = self.rq.failed_job_registry
        dead = sorted(registry.get_job_ids())
        if job_id is not None:
            if str(job_id) not in dead:
                known = [j for j in self.jobs() if j["id"] == str(job_id)]
                if not known:
                    raise ValidationError(f"queue {self.where()}: no job {job_id}")
                raise ValidationError(
                    f"queue {self.where()}: job {job_id} is {known[0]['status']}, not dead; "
                    "only dead jobs are retried by hand"
                )
            dead = [str(job_id)]
        for jid in dead:
            job = RqJob.fetch(jid, connection=self.redis)
            job.retries_left, job.retry_intervals = ABANDONED_RETRIES, [1]
            info = self._info_prefix() + jid
            self.redis.hset(info, "attempts", 0)
            self.redis.hdel(info, "error", "first_failed")
            registry.requeue(job)
        return dead

    # -- inspection -------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Jobs per status: pending (scheduled or queued), failed (waiting for a retry),
        running, dead, done."""
        retrying = int(self.redis.scard(self._retrying_key()))
        waiting = self.rq.scheduled_job_registry.count + self.rq.count
        return {
            "pending": max(0, waiting - retrying),
            "failed": retrying,
            "running": self.rq.started_job_registry.count,
            "dead": self.rq.failed_job_registry.count,
            "done": self.rq.finished_job_registry.count,
        }

    def stats(self) -> dict[str, float]:
        """Totals of finished runs: ``done``/``failed`` counts and their ``*_seconds`` sums."""
        raw = self.redis.hgetall(self._stats_key())
        return {k.decode(): float(v) for k, v in raw.items()}

    def jobs(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every job still known to Redis, oldest first (``status`` filters); ``due`` is when a
        scheduled job runs (None otherwise)."""
        from rq.job import Job as RqJob

        out = []
        scheduled = self.rq.scheduled_job_registry.key
        for key in sorted(self.redis.scan_iter(self._info_prefix() + "*")):
            job_id = key.decode().removeprefix(self._info_prefix())
            info = {k.decode(): v.decode() for k, v in self.redis.hgetall(key).items()}
            try:
                state = RqJob.fetch(job_id, connection=self.redis).get_status()
            except Exception:  # expired from RQ: it finished long ago
                state = None
            waiting = "failed" if "error" in info else "pending"
            mapped = {
                "scheduled": waiting,
                "queued": waiting,
                "deferred": waiting,
                "started": "running",
                "finished": "done",
                "failed": "dead",
                "stopped": "dead",
                "canceled": "dead",
            }.get(str(getattr(state, "value", state)), "done")
            if status is None or mapped == status:
                out.append(
                    {
                        "id": job_id,
                        "name": info.get("name"),
                        "system": info.get("system"),
                        "target": info.get("target"),
                        "status": mapped,
                        "events": int(info.get("events", 0)),
                        "attempts": int(info.get("attempts", 0)),
                        "error": info.get("error"),
                        "due": self.redis.zscore(scheduled, job_id),
                    }
                )
        return out

    def close(self) -> None:
        self.redis.close()


def perform(url: str, queue_name: str, job_id: str, pending: str) -> Any:
    """The RQ job: run the registered handler for one queued labelgate job.

    Raises:
        LookupError: no handler is registered for the job's name in this worker.
    """
    own = [q for q in _WORKER_QUEUE if (q.url, q.name) == (url, queue_name)]
    queue = own[0] if own else RedisQueue(url, queue_name)
    started = time.monotonic()
    try:
        job = queue.start(job_id, pending)
        handler = _HANDLERS.get(job.name)
        if handler is None:
            raise LookupError(
                f"no handler registered for job {job.name!r} in this process (run `labelgate worker`)"
            )
        result = handler(job)
    except Exception as exc:
        queue.record("failed", time.monotonic() - started)
        queue._failed(job_id, exc)
        raise
    else:
        queue.record("done", time.monotonic() - started)
        info = queue._info_prefix() + job_id
        queue.redis.hdel(info, "error", "first_failed")
        queue.redis.expire(info, int(queue.retention))  # kept for `jobs()`, then dropped
        return result if isinstance(result, (dict, list, int, float, str, type(None))) else None
    finally:
        if not own:
            queue.close()
