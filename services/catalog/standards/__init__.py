"""Standard descriptions of the catalog: DCAT-AP 3 (Turtle, JSON-LD) and AsyncAPI 3.0.

Pure functions from plain descriptions (:mod:`.model`) to documents; the catalog's API calls them
with what it read from its tables and streams or returns the result. Nothing here touches a
database, the bus or the network.
"""

from services.catalog.standards.model import (
    CatalogDescription,
    Classification,
    DatasetDescription,
    PlatformLinks,
    PublisherDescription,
)

__all__ = [
    "CatalogDescription",
    "Classification",
    "DatasetDescription",
    "PlatformLinks",
    "PublisherDescription",
]
