"""citybase quality: quality and utilization.

Per-dataset scores over windows of the stream (validity, completeness, uniqueness, conformity,
timeliness) and utilization from delivery metering. ``consumer.py`` reads ``ds.``/``dlq.`` into
windows (``windows.py``), ``scorer.py`` scores a window with the contract's Great Expectations
suite (``expectations.py``, formulas in ``scoring.py``), ``store.py`` keeps scores and SLA breaches
and announces them on ``platform.quality``, ``queries.py``, ``utilization.py`` and
``scorecards.py`` answer the API, whose shapes are in ``schemas.py``.
"""
