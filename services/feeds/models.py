"""Tables of the feeds service (prefix ``feeds_``)."""

from sqlalchemy.orm import DeclarativeBase

from services.common.outbox import outbox_table


class Base(DeclarativeBase):
    pass


outbox = outbox_table(Base.metadata, "feeds")
