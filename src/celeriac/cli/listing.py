"""``celeriac list bindings``: where the app's task messages are routed on the broker.

Edge layer (cli). On RabbitMQ the app's queues are declared first (as a worker or the
first publish would), then each queue's bindings are listed: the default exchange by the
queue's name, the delay exchanges' last step (``<namespace>.delay.deliver``), the dead
letter queue, and, with ``--delays``, the 32 delay-level queues every queue shares. These
are the bindings celeriac declares; a binding added by hand (outside celeriac) is not
listed. Redis has no exchanges or bindings: the command says so and names the queues'
keys instead.
"""

from __future__ import annotations

from typing import Any

import click

from celeriac.cli.base import CLIContext, CLIError
from celeriac.exceptions import BrokerConnectionError


@click.group("list", short_help="List information from the broker.")
def list_group() -> None:
    """List information from the broker."""


def amqp_bindings(names: Any, queue: str) -> list[tuple[str, str, str]]:
    """``(queue, exchange, routing key)`` rows celeriac declares for ``queue`` (``names``:
    the broker's ``topology.Names``)."""
    # Here, not at the top: the RabbitMQ engine needs aiormq, an optional dependency.
    from celeriac.brokers.amqp import topology

    dead = names.dead_queue(queue)
    return [
        (queue, "(default)", queue),
        (queue, names.deliver, topology.deliver_binding(queue)),
        (dead, "(default)", dead),
    ]


def delay_bindings(names: Any) -> list[tuple[str, str, str]]:
    """The rows of the 32 delay-level queues, which every queue shares."""
    from celeriac.brokers.amqp import topology

    return [
        (names.delay_queue(level), names.delay_exchange(level),
         topology.level_queue_binding(level))
        for level in range(topology.LEVELS)
    ]  # fmt: skip


@list_group.command("bindings")
@click.option("--delays", is_flag=True, help="Also list the 32 shared delay-level queues.")
@click.pass_obj
def bindings_command(obj: CLIContext, delays: bool) -> None:
    """Declare the app's queues (task_queues, else task_default_queue) and list their
    queue / exchange / routing key bindings (RabbitMQ; Redis has no bindings)."""
    app = obj.load_app()
    queues = list(app.amqp.queues) if app.amqp.queues else [app.conf.task_default_queue]
    broker = app.broker
    declare = getattr(broker, "declare_queue", None)
    names = getattr(broker, "names", None)
    if declare is None or names is None:
        click.echo(
            f"{type(broker).__name__} has no exchanges or bindings: a task message goes "
            f"straight to the queue its route names. The app's queues: {', '.join(queues)}."
        )
        return
    rows: list[tuple[str, str, str]] = []
    try:
        for queue in queues:
            declare(queue)
            rows += amqp_bindings(names, queue)
    except BrokerConnectionError as exc:
        raise CLIError(f"cannot list bindings: {exc}") from exc
    finally:
        app.close()
    if delays:
        rows += delay_bindings(names)
    click.echo(f"{'Queue':<32} {'Exchange':<28} Routing key")
    click.echo(f"{'-' * 16:<32} {'-' * 16:<28} {'-' * 16}")
    for queue, exchange, key in rows:
        click.echo(f"{queue:<32} {exchange:<28} {key}")
    if not delays:
        click.echo("(and the 32 delay-level queues all queues share: --delays lists them)")


__all__ = ["amqp_bindings", "bindings_command", "delay_bindings", "list_group"]
