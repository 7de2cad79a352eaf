"""citybase ingest: contract-checked streams in.

Records over HTTP or from ``raw.<dataset>`` are validated against the dataset's active contract
and written to ``ds.<dataset>`` as CloudEvents, or to ``dlq.<dataset>`` with the reason.
``service.py`` (``Ingestor.accept``, the route's one call), ``publishers.py`` (who may publish),
``parsing.py`` (JSON, NDJSON, CSV), ``validation.py`` (the compiled contract), ``routing.py`` and
``envelopes.py`` (where each record goes, as what), ``idempotency.py``, ``raw.py`` (the raw topic
supervisor), ``projection.py`` (the read model of ``platform.catalog``).
"""
