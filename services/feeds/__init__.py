"""citybase feeds: authorized, masked delivery out.

Scenario builders subscribe to granted datasets over long-poll, Server-Sent Events or webhooks;
every batch checks the grant and the principal, applies the grant's masking and row filter, and is
metered on ``platform.usage``. ``service.py`` (one method per route, each in its own transaction),
``access.py`` (key, grant and quota checks), ``delivery.py`` (reading and metering a batch),
``streams.py`` (SSE), ``subscriptions.py``, ``readers.py`` (the pool of Kafka readers),
``webhooks.py`` (the pusher), ``projection.py`` (the read model of ``platform.catalog``).
"""
