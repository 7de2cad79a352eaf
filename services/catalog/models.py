"""Tables of the catalog service (prefix ``catalog_``)."""

from sqlalchemy.orm import DeclarativeBase

from services.common.outbox import outbox_table


class Base(DeclarativeBase):
    pass


outbox = outbox_table(Base.metadata, "catalog")
