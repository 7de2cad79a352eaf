"""citybase services: catalog, ingest, feeds, quality, and their shared kernel in ``common``."""
