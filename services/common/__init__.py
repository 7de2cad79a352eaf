"""The shared kernel every citybase service is built on.

``app.py`` is the app factory (lifespan, health, readiness, metrics, problem errors) and the kernel
``Runtime`` each service's typed runtime extends; ``background.py`` the one way to run loops,
timers and "start once the bus answers"; ``bus/`` the bus interface with its Kafka and embedded
backends; ``envelope.py`` CloudEvents; ``db.py``, ``outbox.py``, ``worker.py`` and ``readmodel.py``
the transactional and streaming building blocks; ``topics.py`` with ``catalog_events``,
``quality_events`` and ``usage_events`` every platform topic and event; ``auth.py`` keys and
principals; ``policy/`` grant masking and row filters; ``problems.py`` RFC 9457 errors;
``i18n.py`` Chinese and English; ``metrics.py``, ``logs.py``, ``settings.py``.
"""
