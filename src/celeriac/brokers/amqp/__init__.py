"""The RabbitMQ broker: durable (classic or quorum) queues, publisher confirms, broker-side
delays in TTL'd delay queues, leases held by the consumer, dead-letter queues, and a
fanout exchange plus a stream for revocations.

Engine: imports ``brokers.base`` and aiormq; never the app or other engines.
"""

from celeriac.brokers.amqp.broker import AmqpBroker

__all__ = ["AmqpBroker"]
