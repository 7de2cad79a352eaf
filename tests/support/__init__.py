"""What the suites share to drive citybase.

- ``platform``: the platform test driver, :class:`~tests.support.platform.Platform`: the four
  services and the console as a client sees them, in this process (TestClient or a real socket)
  or as a ``citybase up`` process;
- ``services``: drivers of one service on its own (catalog; catalog + ingest; feeds served next to
  them, webhooks allowed by its settings; quality fed the events the others would publish);
- ``processes``: services as ``citybase serve`` processes a test can kill and start again;
- ``principals`` and ``keys``: who the suites call the platform as, admin keys, waiting for a key;
- ``http`` (serving an app on 127.0.0.1), ``webhooks`` (a receiver), ``postgres``, ``kafka_topics``,
  ``infra`` (private brokers and servers), ``contracts``, ``dcat``, ``deploy``, ``fuzzing``.

Test modules import from here, from ``tests.factories`` and from their conftest's fixtures, never
from another test module or a conftest (``tests/unit/test_layout.py`` checks it).
"""
