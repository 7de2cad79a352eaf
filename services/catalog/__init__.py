"""citybase catalog: the system of record of the city's data; every change is published on `platform.catalog`.

One folder per area, each with its ``service.py`` (the rules: it authorizes, audits and writes in
the caller's session) and, where it has routes, its ``api.py`` (a route calls one service
function): ``domains`` (fields of data and departments), ``datasets``, ``search``, ``contracts``
(ODCS contracts and their versions), ``principals`` (and API keys), ``access`` (scenarios, access
requests, grants), ``audit`` (the hash-chained trail), ``scores`` (quality as quality announces
it) and ``standards`` (DCAT-AP, AsyncAPI). ``events.py`` announces changes through the outbox;
``models.py`` and ``schemas.py`` hold the registry's tables and shapes.
"""
