"""The ODCS repository's own examples (tests/data/odcs/, source in its README), and registering
each of them as it is into a fresh catalog, as a department of the ``seller`` domain would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.catalog.access.context import Collaborators
from services.catalog.access.settings import AccessSettings
from services.catalog.contracts import service as contracts
from services.catalog.domains.service import add_department
from services.catalog.models import Domain
from services.catalog.schemas import DepartmentCreate
from services.common.auth import Principal, PrincipalKind
from services.common.problems import Problem
from tests.support.catalog_units import CatalogWorld

ODCS_DATA = Path(__file__).resolve().parents[1] / "data" / "odcs"
ODCS_EXAMPLES = sorted((ODCS_DATA / "examples").glob("*/*.yaml"))
ODCS_SCHEMAS = {
    path.stem.removeprefix("odcs-json-schema-"): path for path in (ODCS_DATA / "schema").glob("*.json")
}

SELLER_OFFICE = Principal("seller-publisher", PrincipalKind.department, "S", "seller-office")
"""The publisher of the examples: its department owns ``seller``, the domain the full example names."""


def seller_office(world: CatalogWorld) -> None:
    """Add the ``seller`` domain and its department to a catalog world."""
    world.session.add(Domain(id="seller", name="Seller", description="Sales of the examples"))
    add_department(
        world.session,
        events=world.events,
        payload=DepartmentCreate(id="seller-office", name="Seller office", kind="bureau", domains=["seller"]),
    )
    world.session.commit()


@dataclass(frozen=True)
class Outcome:
    example: str
    dataset_id: str | None
    problem: str | None


def register_example(world: CatalogWorld, path: Path) -> Outcome:
    """Register one example as it is; what the catalog answered."""
    ctx = Collaborators(world.session, world.events, world.auditor(SELLER_OFFICE), AccessSettings())
    name = str(path.relative_to(ODCS_DATA / "examples"))
    try:
        read = contracts.register_contract(ctx, actor=SELLER_OFFICE, document=path.read_bytes())
    except Problem as problem:
        world.session.rollback()
        errors = [f"{e.rule}: {e.message}" for e in problem.errors or ()]
        return Outcome(name, None, f"{problem.detail}: {errors}")
    world.session.commit()
    return Outcome(name, read.dataset_id, None)


def register_every_example(new_world: Callable[[], CatalogWorld]) -> list[Outcome]:
    """Each example into its own fresh catalog (several share one id and version)."""
    outcomes = []
    for path in ODCS_EXAMPLES:
        world = new_world()
        seller_office(world)
        outcomes.append(register_example(world, path))
        world.session.close()
    return outcomes
