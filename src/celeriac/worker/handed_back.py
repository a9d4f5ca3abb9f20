"""Dead letters the broker made by itself, handed back to the worker that fetched.

An engine moves a message to the dead letters without any worker settling it when its
lease ran out at the delivery limit (the worker holding it died, every time), when it was
lost with a connection once too often, or when it is an entry other software wrote that
cannot be handed out. Engines know nothing of tasks, so they hand those dead letters back
(``Broker.take_dead_lettered``) and the worker ends each call as if it had settled the
message itself: it reads the message as it reads any (``execution.prepare``), records
FAILURE with an exception saying why, and tells the call's errbacks, chain and chord
(``endings.given_up``), unless the call had already ended. A message that is no valid
task call is told as a refusal would be (``execution.tell_refused``); one that is not a
message, or fails its signature check, has nobody to tell.

Runtime layer: imports the worker's ``execution`` and ``endings`` and the broker seam.
Blocking (the result store, errbacks): the consumer runs it off its event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac.brokers.base import DeadLetter, DeadLetterReason, Delivery
from celeriac.exceptions import InvalidTaskError, WorkerLostError
from celeriac.trace import Outcome
from celeriac.worker import endings
from celeriac.worker.execution import HeldJob, Refusal, prepare, tell_refused

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac

logger = logging.getLogger("celeriac.worker")

_LOST = (DeadLetterReason.DELIVERY_LIMIT, DeadLetterReason.WORKER_LOST)


def reason_for(letter: DeadLetter) -> Exception:
    """What the call's result records: ``WorkerLostError`` for a message handed out until
    the delivery limit with no outcome, ``InvalidTaskError`` for one the broker could not
    hand out, each naming the broker's detail and where the message is now."""
    text = (
        f"{letter.detail}; the broker moved its message to the dead letters of queue "
        f"{letter.queue!r} ({letter.reason.value})"
    )
    return WorkerLostError(text) if letter.reason in _LOST else InvalidTaskError(text)


def end(
    app: Celeriac, letter: DeadLetter, hostname: str | None = None, consumer: Any = None
) -> tuple[HeldJob, Outcome] | None:
    """End the call of one handed-back dead letter; the job and its outcome when it was a
    task call that had not ended yet (for the worker's listeners), else None."""
    logger.error(
        "Message %s from queue %r dead-lettered by the broker (%s): %s",
        letter.message_id, letter.queue, letter.reason.value, letter.detail,
    )  # fmt: skip
    # Only read, never settled: the broker has settled it already (the token is no lease).
    stand_in = Delivery(
        app.broker, letter.queue, letter.payload, letter.message_id,
        letter.delivery_count, letter.priority, token="",
    )  # fmt: skip
    prepared = prepare(app, stand_in, hostname, consumer=consumer)
    if isinstance(prepared, Refusal):
        tell_refused(app, prepared)
        return None
    outcome = endings.given_up(prepared, reason_for(letter))
    return None if outcome is None else (prepared, outcome)


def end_all(
    app: Celeriac, letters: Sequence[DeadLetter], hostname: str | None = None, consumer: Any = None
) -> list[tuple[HeldJob, Outcome]]:
    """``end`` each; one that fails is logged, and the others are still ended."""
    ended: list[tuple[HeldJob, Outcome]] = []
    for letter in letters:
        try:
            done = end(app, letter, hostname, consumer)
        except Exception:
            logger.exception("could not end the call of dead letter %s", letter.message_id)
            continue
        if done is not None:
            ended.append(done)
    return ended


__all__ = ["end", "end_all", "reason_for"]
