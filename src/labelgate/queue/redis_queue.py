"""Scale-out queue on Redis + RQ, with the durable queue's semantics.

- ``enqueue`` is idempotent per delivery id (``SET NX`` with a week's expiry).
- A re-score request is one RQ job scheduled ``debounce`` seconds ahead (RQ's scheduled-job
  registry). Requests for the same (name, system, target) while that job is still scheduled push
  its time back and count as ``coalesced``; one arriving after it left the schedule starts a new
  job, so work is never folded into a run that already read its data.
- Any number of ``labelgate worker`` processes, on any machine that reaches Redis, run the jobs
  (one of them also runs RQ's scheduler). A job whose worker died is retried by RQ's abandoned-job
  clean-up; a failing handler is retried with backoff, then kept in RQ's failed registry.

Handlers are registered in the worker process with :func:`set_handlers`; the RQ job itself only
names :func:`perform` and the job's key.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from labelgate.errors import MissingDependency
from labelgate.queue.durable import Job

PREFIX = "labelgate:queue"
RETRY_INTERVALS = (5, 30, 120)
DELIVERY_TTL = 7 * 24 * 3600

_HANDLERS: dict[str, Callable[[Job], Any]] = {}

# One round trip for the common cases (a redelivery, or an event folded into a waiting job).
# KEYS: delivery key, pending key, scheduled registry, info key prefix
# ARGV: check delivery ("1"/"0"), new due time (int seconds, RQ's resolution), payload JSON,
#       delivery TTL, may coalesce ("1"/"0")
# Returns {"duplicate", id} | {"coalesced", id} | {"create", ""}; "create" reserves the delivery.
_ENQUEUE = """
if ARGV[1] == '1' then
  local seen = redis.call('GET', KEYS[1])
  if seen then return {'duplicate', seen} end
end
if ARGV[5] == '1' then
  local id = redis.call('GET', KEYS[2])
  if id and redis.call('ZSCORE', KEYS[3], id) then
    redis.call('ZADD', KEYS[3], 'XX', ARGV[2], id)
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


def set_handlers(handlers: dict[str, Callable[[Job], Any]]) -> None:
    """Register job name → handler for :func:`perform` in this (worker) process."""
    _HANDLERS.clear()
    _HANDLERS.update(handlers)


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
    """

    def __init__(self, url: str, name: str = "labelgate") -> None:
        redis, rq = _modules()
        self.url = url
        self.name = name
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

    # -- producer side ----------------------------------------------------------------------

    def enqueue(
        self,
        name: str,
        system: str,
        target: str,
        payload: dict[str, Any] | None = None,
        *,
        debounce: float = 0.0,
        delivery: str | None = None,
        now: float | None = None,
    ) -> tuple[str | None, str]:
        """Queue (or merge into) a job. Returns (job id, "queued" | "coalesced" | "duplicate")."""
        t = time.time() if now is None else now
        body = json.dumps(payload or {})
        dkey = f"{PREFIX}:{self.name}:delivery:{delivery}" if delivery is not None else ""
        pending = self._pending_key(name, system, target)
        due = int(t + debounce + 0.999)  # RQ schedules in whole seconds; never run early

        def attempt(check_delivery: bool) -> tuple[str, str]:
            outcome, job_id = self._enqueue_script(
                keys=[dkey, pending, self.rq.scheduled_job_registry.key, self._info_prefix()],
                args=["1" if check_delivery else "0", due, body, DELIVERY_TTL, int(debounce > 0)],
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
                        self._create(name, system, target, body, debounce, due),
                        "queued",
                    )
        except BaseException:
            if dkey:  # not queued: a retry of this delivery must not be a duplicate
                self.redis.delete(dkey)
            raise
        if dkey:
            self.redis.set(dkey, job_id, ex=DELIVERY_TTL)
        return job_id, outcome

    def _create(
        self, name: str, system: str, target: str, body: str, debounce: float, due: int
    ) -> str:
        """A new RQ job for the target, scheduled at ``due`` when debounced."""
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
            },
        )
        self.redis.set(pending, job_id)
        kwargs: dict[str, Any] = {
            "job_id": job_id,
            "retry": Retry(max=len(RETRY_INTERVALS), interval=list(RETRY_INTERVALS)),
            "job_timeout": 3600,
            "result_ttl": 24 * 3600,
            "failure_ttl": 7 * 24 * 3600,
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

    # -- inspection -------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Jobs per status: pending (scheduled or queued), running, done, failed."""
        return {
            "pending": self.rq.scheduled_job_registry.count + self.rq.count,
            "running": self.rq.started_job_registry.count,
            "done": self.rq.finished_job_registry.count,
            "failed": self.rq.failed_job_registry.count,
        }

    def stats(self) -> dict[str, float]:
        """Totals of finished runs: ``done``/``failed`` counts and their ``*_seconds`` sums."""
        raw = self.redis.hgetall(self._stats_key())
        return {k.decode(): float(v) for k, v in raw.items()}

    def jobs(self, status: str | None = None) -> list[dict[str, Any]]:
        """Every job still known to Redis, oldest first (``status`` filters)."""
        from rq.job import Job as RqJob

        out = []
        for key in sorted(self.redis.scan_iter(self._info_prefix() + "*")):
            job_id = key.decode().removeprefix(self._info_prefix())
            info = {k.decode(): v.decode() for k, v in self.redis.hgetall(key).items()}
            try:
                state = RqJob.fetch(job_id, connection=self.redis).get_status()
            except Exception:  # expired from RQ: it finished long ago
                state = None
            mapped = {
                "scheduled": "pending",
                "queued": "pending",
                "deferred": "pending",
                "started": "running",
                "finished": "done",
                "failed": "failed",
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
    queue = RedisQueue(url, queue_name)
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
        queue.redis.hset(queue._info_prefix() + job_id, "error", f"{type(exc).__name__}: {exc}")
        raise
    else:
        queue.record("done", time.monotonic() - started)
        info = queue._info_prefix() + job_id
        queue.redis.hdel(info, "error")
        queue.redis.expire(info, DELIVERY_TTL)  # kept a week for `jobs()`, then dropped
        return result if isinstance(result, (dict, list, int, float, str, type(None))) else None
    finally:
        queue.close()
