"""catalog: search on PostgreSQL from a stored ``tsvector`` column and ordered posting lists.

The catalog_0002 index was a GIN index on the expression ``to_tsvector('simple', search_text)``. A search
answers a page of datasets *in id order*; a GIN index knows which rows match but not their order,
so every query either fetched and sorted all its matches (a common word matches a quarter of the
catalog) or walked the primary key and tested rows until a page was full (a word whose datasets
sort late walks most of the catalog). Both grow with the catalog.

This revision keeps, per dataset, one row for each word of its search text and for each value it
can be filtered on, in ``catalog_dataset_terms`` with primary key ``(field, term, dataset_id)``:
the datasets of one word (or one domain, status, ...) are then an index range already in id order,
read without touching the table. A page is the first ids in the intersection of a few such ranges,
starting at the cursor, which PostgreSQL reads with index-only scans joined in order: its cost
follows the page size, not how many datasets match. A trigger keeps the rows in step with every
write to ``catalog_datasets`` (the service's, a bulk COPY's, a manual fix).

The words are the lexemes of a stored generated ``search_vector`` column, each cut to its leading
run of letters and digits: the parser also keeps compounds whole (``bus-arrivals``,
``transport.bike``), and as a query word is letters and digits only, it is a prefix of a compound
exactly when it is a prefix of that leading run. Matches stay those of ``to_tsquery('word:*')``
while a prefix expands to a few words, not to every compound. The vector also backs a GIN
index for the queries the posting lists do not serve (a prefix of one or two letters, which
expands to very many words). SQLite keeps its FTS5 table.

Revision ID: catalog_0005
Revises: catalog_0004
Create Date: 2026-11-24
"""

from collections.abc import Sequence

from alembic import op

revision: str = "catalog_0005"
down_revision: str | None = "catalog_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX_TERMS = """
CREATE FUNCTION catalog_datasets_index_terms() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' THEN
        DELETE FROM catalog_dataset_terms WHERE dataset_id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        INSERT INTO catalog_dataset_terms (field, term, dataset_id)
        SELECT DISTINCT entry.field, entry.term, NEW.id
        FROM (
            SELECT 'text' AS field, substring(lexeme FROM '^[[:alnum:]]+') AS term
            FROM unnest(tsvector_to_array(NEW.search_vector)) AS lexeme
            UNION ALL SELECT 'domain', NEW.domain_id
            UNION ALL SELECT 'department', NEW.owner_department_id
            UNION ALL SELECT 'classification', NEW.classification
            UNION ALL SELECT 'status', NEW.status
            UNION ALL SELECT 'tag', json_array_elements_text(NEW.tags)
        ) AS entry
        WHERE entry.term IS NOT NULL;
    END IF;
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # Adding a stored generated column rewrites the table once, computing every existing row's vector.
    op.execute(
        "ALTER TABLE catalog_datasets ADD COLUMN search_vector tsvector "
        "GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, search_text)) STORED"
    )
    op.execute("CREATE INDEX ix_catalog_datasets_search_vector ON catalog_datasets USING gin (search_vector)")
    op.execute("DROP INDEX IF EXISTS ix_catalog_datasets_search")
    # Terms compare bytewise (prefix ranges); dataset ids keep the collation of catalog_datasets.id,
    # so that the posting lists are in the order pages are in.
    op.execute(
        "CREATE TABLE catalog_dataset_terms ("
        " field text NOT NULL,"
        ' term text COLLATE "C" NOT NULL,'
        " dataset_id varchar(200) NOT NULL,"
        " CONSTRAINT pk_catalog_dataset_terms PRIMARY KEY (field, term, dataset_id))"
    )
    op.execute(INDEX_TERMS)
    op.execute(
        "INSERT INTO catalog_dataset_terms (field, term, dataset_id)"
        " SELECT DISTINCT entry.field, entry.term, entry.dataset_id FROM ("
        "  SELECT 'text' AS field, substring(lexeme FROM '^[[:alnum:]]+') AS term, id AS dataset_id"
        "  FROM catalog_datasets, unnest(tsvector_to_array(search_vector)) AS lexeme"
        "  UNION ALL SELECT 'domain', domain_id, id FROM catalog_datasets"
        "  UNION ALL SELECT 'department', owner_department_id, id FROM catalog_datasets"
        "  UNION ALL SELECT 'classification', classification, id FROM catalog_datasets"
        "  UNION ALL SELECT 'status', status, id FROM catalog_datasets"
        "  UNION ALL SELECT 'tag', json_array_elements_text(tags), id FROM catalog_datasets"
        " ) AS entry WHERE entry.term IS NOT NULL"
    )
    # The trigger's DELETE finds a dataset's rows by id.
    op.execute("CREATE INDEX ix_catalog_dataset_terms_dataset_id ON catalog_dataset_terms (dataset_id)")
    op.execute(
        "CREATE TRIGGER catalog_datasets_index_terms"
        " AFTER INSERT OR DELETE OR UPDATE OF id, search_text, domain_id, owner_department_id,"
        " classification, status, tags ON catalog_datasets"
        " FOR EACH ROW EXECUTE FUNCTION catalog_datasets_index_terms()"
    )
    # Statistics now, not at the next autovacuum: search plans depend on them.
    op.execute("ANALYZE catalog_datasets")
    op.execute("ANALYZE catalog_dataset_terms")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER catalog_datasets_index_terms ON catalog_datasets")
    op.execute("DROP FUNCTION catalog_datasets_index_terms()")
    op.execute("DROP TABLE catalog_dataset_terms")
    op.execute(
        "CREATE INDEX ix_catalog_datasets_search ON catalog_datasets "
        "USING gin (to_tsvector('simple', search_text))"
    )
    op.execute("DROP INDEX ix_catalog_datasets_search_vector")
    op.execute("ALTER TABLE catalog_datasets DROP COLUMN search_vector")
