"""Which jobs still have a message in the broker: lets the reconciler re-send only lost ones.

Without this, a job that simply waits its turn in a long queue (1,000 volumes at 18:00 on two
workers) would get a duplicate message every `JOB_RESEND_AFTER_SECONDS`; duplicates are safe
(the claim runs a job once) but a backlog would grow with them. With Redis (the platform's
broker) the probe reads the queue lists and kombu's `unacked` hash (messages a worker holds,
including countdown retries) and collects the job ids named in the messages' headers.

Returns None when it cannot tell (another transport, Redis unreachable, anything unexpected):
the reconciler then falls back to age alone, which errs on the side of re-sending.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable

logger = logging.getLogger(__name__)

_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# kombu's Redis transport keeps priority levels in sibling lists "<queue>\x06\x16<priority>".
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
UNACKED_KEY = "unacked"
#: kombu's sorted set of the same delivery tags, scored by the time each was delivered.
UNACKED_INDEX_KEY = "unacked_index"


def current_broker_url() -> str:
    from storage_platform.celery import app

    return app.conf.broker_url or ""


def job_ids_with_messages(queues: Iterable[str], *, broker_url: str | None = None,
                          held_for_at_most: float | None = None,
                          now: float | None = None) -> set[str] | None:
    """Job ids (as strings) named by a message waiting in `queues` or held unacknowledged.

    With `held_for_at_most` (seconds), an unacknowledged message counts only if it was
    delivered that recently. A worker killed with SIGKILL leaves the messages it had
    reserved in `unacked` until the broker's visibility timeout (hours): for a job that is
    still queued long after its message was delivered, that message is no sign that
    anyone will run it.
    """
    url = broker_url if broker_url is not None else current_broker_url()
    if not url.startswith(("redis://", "rediss://")):
        return None
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=10)
        try:
            pipe = client.pipeline(transaction=False)
            for queue in sorted(set(queues)):
                for suffix in _PRIORITY_SUFFIXES:
                    pipe.lrange(f"{queue}{suffix}", 0, -1)
            if held_for_at_most is None:
                pipe.hvals(UNACKED_KEY)
                results = pipe.execute()
            else:
                since = (time.time() if now is None else now) - held_for_at_most
                pipe.zrangebyscore(UNACKED_INDEX_KEY, since, "+inf")
                *results, recent_tags = pipe.execute()
                results.append(client.hmget(UNACKED_KEY, recent_tags) if recent_tags else [])
            found: set[str] = set()
            for messages in results:
                messages = [raw for raw in messages if raw is not None]
                for raw in messages:
                    found.update(match.decode() for match in _UUID.findall(raw))
            return found
        finally:
            client.close()
    except Exception as error:  # the probe is an optimisation; never let it stop a repair
        logger.warning("reconciler: cannot read the broker's queues (%s); re-sending by age only",
                       type(error).__name__)
        return None
