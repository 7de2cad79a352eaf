"""HTTP routes of the catalog's registry: one router per area, in the order the API documents them.

Each area's ``api.py`` parses a request, calls one service function of its ``service.py`` (which
authorizes, audits and writes) and answers; authorized operation (``access``) and the audit trail
(``audit``) bring their own routers.
"""

from __future__ import annotations

from fastapi import APIRouter

from services.catalog.contracts.api import router as contracts
from services.catalog.datasets.api import router as datasets
from services.catalog.domains.api import router as domains
from services.catalog.principals.api import router as principals
from services.catalog.standards.api import router as standards

router = APIRouter()
for area in (domains, datasets, contracts, principals, standards):
    router.include_router(area)
