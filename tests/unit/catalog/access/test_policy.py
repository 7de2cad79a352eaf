"""Who may decide on and see access to a dataset, and what a listing shows each kind of caller."""

from __future__ import annotations

import pytest

from services.catalog.access import exceptions
from services.catalog.access.models import AccessRequest
from services.catalog.access.policy import listed, may_decide, may_see
from services.catalog.models import Dataset
from services.common.auth import Principal, PrincipalKind

INSPECTIONS = Dataset(id="market.inspections", owner_department_id="market-supervision")
ADMIN = Principal("admin", PrincipalKind.admin, "Admin")
OPERATOR = Principal("ops", PrincipalKind.operator, "Operator")
MARKET_APPROVER = Principal("m-approver", PrincipalKind.approver, "M", "market-supervision")
HEALTH_APPROVER = Principal("h-approver", PrincipalKind.approver, "H", "health-commission")
MARKET_PUBLISHER = Principal("m-publisher", PrincipalKind.department, "MP", "market-supervision")
VISIT = Principal("one-stop-visit", PrincipalKind.scenario, "Visit")


def test_an_approver_of_the_owning_department_or_an_admin_decides_and_no_one_else() -> None:
    may_decide(ADMIN, INSPECTIONS)
    may_decide(MARKET_APPROVER, INSPECTIONS)
    for actor in (HEALTH_APPROVER, MARKET_PUBLISHER, OPERATOR, VISIT):
        with pytest.raises(exceptions.NotTheOwningDepartment):
            may_decide(actor, INSPECTIONS)


def test_a_scenario_sees_its_own_access_and_a_department_that_of_its_datasets() -> None:
    for actor in (ADMIN, OPERATOR, MARKET_APPROVER, MARKET_PUBLISHER):
        may_see(actor, VISIT.id, INSPECTIONS)
    may_see(VISIT, VISIT.id, INSPECTIONS)
    with pytest.raises(exceptions.NotYourScenario):
        may_see(VISIT, "ai-community", INSPECTIONS)
    with pytest.raises(exceptions.NotTheOwningDepartment):
        may_see(HEALTH_APPROVER, VISIT.id, INSPECTIONS)


def test_a_listing_narrows_to_what_the_caller_may_see() -> None:
    staff = str(listed(OPERATOR, AccessRequest, None, None, "access requests"))
    assert "WHERE" not in staff and "ORDER BY" in staff
    own = listed(VISIT, AccessRequest, None, None, "access requests").compile()
    assert own.params == {"scenario_id_1": VISIT.id}
    department = str(listed(MARKET_APPROVER, AccessRequest, None, "market.inspections", "access requests"))
    assert "owner_department_id" in department and "dataset_id =" in department
    nobody = Principal("loose", PrincipalKind.approver, "No department")
    where = str(listed(nobody, AccessRequest, None, None, "access requests")).split("WHERE")[1]
    assert where.split("ORDER BY")[0].strip() == "false"  # an approver of no department sees nothing
    with pytest.raises(exceptions.NotYourScenario):
        listed(VISIT, AccessRequest, "ai-community", None, "access requests")
