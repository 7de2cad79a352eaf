"""The example catalog: the city's example departments and contracts, loaded on an empty catalog.

``citybase up`` and the tests load them so that a newcomer sees real datasets at once.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from sqlalchemy.orm import Session

from services.catalog.contracts.service import add_contract
from services.catalog.domains.service import add_department, ensure_city_domains
from services.catalog.events import CatalogEvents
from services.catalog.models import Department
from services.catalog.schemas import DepartmentCreate


def load_examples(session: Session, *, events: CatalogEvents, directory: Path) -> list[str]:
    """Register the example departments and every example contract version, oldest first.

    ``directory`` holds ``departments.yaml`` and ``datasets/<dataset-id>/<version>.yaml``. Used
    by ``citybase up`` on an empty catalog, in the caller's session (no audit entries: the examples
    are the platform's own).
    """
    ensure_city_domains(session)
    for entry in yaml.safe_load((directory / "departments.yaml").read_text(encoding="utf-8")):
        if session.get(Department, entry["id"]) is None:
            add_department(session, events=events, payload=DepartmentCreate.model_validate(entry))
    registered: list[str] = []
    for dataset_dir in sorted(path for path in (directory / "datasets").iterdir() if path.is_dir()):
        files = sorted(dataset_dir.glob("*.yaml"), key=lambda path: _semver_sort_key(path.stem))
        for path in files:
            version = add_contract(
                session, events=events, document=path.read_text(encoding="utf-8"), created_by="examples"
            )
            registered.append(f"{version.dataset_id}@{version.version}")
    return registered


def _semver_sort_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in text.split("-", 1)[0].split("."))
