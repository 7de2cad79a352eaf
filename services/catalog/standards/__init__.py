"""Standard descriptions of the catalog: DCAT-AP 3 (Turtle, JSON-LD) and AsyncAPI 3.0.

Pure functions from plain descriptions (:mod:`.model`) to documents, which touch no database,
bus or network: DCAT-AP as statements (:mod:`.dcat`) drawing on the EU vocabularies
(:mod:`.dcat_vocabularies`), written as Turtle or JSON-LD (:mod:`.dcat_serialization`), and
AsyncAPI (:mod:`.asyncapi`); :mod:`.service` reads the catalog's
tables into those descriptions, and :mod:`.api` streams or returns the documents.
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
