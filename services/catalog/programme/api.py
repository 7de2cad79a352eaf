"""HTTP routes of the scenario programme under ``/v1``: opportunity lists and their openings,
applicants, proposals and the selection.

Each route parses the request, calls one service function (which authorizes, audits and writes)
and answers. The published lists and an applicant's registration need no key; who may call the
rest is in docs/authorization.md.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from services.catalog.access.deps import AccessDep
from services.catalog.deps import OptionalPrincipalDep, PublicReaderDep, ReaderDep, SessionDep
from services.catalog.needs.deps import ClientAddressDep, NeedsSettingsDep
from services.catalog.programme import applicants, lists, proposals, publication
from services.catalog.programme.schemas import (
    ApplicantCreate,
    ApplicantRead,
    ApplicantStatus,
    ApplicantVetted,
    ApplicantVetting,
    OpeningCreate,
    OpportunityListCreate,
    OpportunityListPage,
    OpportunityListRead,
    ProposalComparison,
    ProposalCreate,
    ProposalRead,
    Selection,
    SelectionRead,
)

router = APIRouter(prefix="/v1")
ATOM_TYPE = "application/atom+xml"
CSV_TYPE = "text/csv; charset=utf-8"

# --- opportunity lists ----------------------------------------------------------------------


@router.post(
    "/opportunity-lists",
    response_model=OpportunityListRead,
    status_code=status.HTTP_201_CREATED,
    tags=["programme"],
    summary="Draft an opportunity list (operator)",
)
def create_list(payload: OpportunityListCreate, access: AccessDep, caller: ReaderDep) -> OpportunityListRead:
    return lists.create_list(access, actor=caller, payload=payload)


@router.get(
    "/opportunity-lists",
    response_model=OpportunityListPage,
    tags=["programme"],
    summary="Published opportunity lists with their openings, newest first (no key needed)",
)
def list_lists(session: SessionDep, caller: PublicReaderDep) -> OpportunityListPage:
    return OpportunityListPage(items=lists.published_lists(session, reader=caller))


@router.get(
    "/opportunity-lists.atom",
    tags=["programme"],
    summary="The openings of every published list as an Atom feed (no key needed)",
    response_class=Response,
    responses={200: {"content": {ATOM_TYPE: {}}}},
)
def lists_atom(request: Request, session: SessionDep, caller: PublicReaderDep) -> Response:
    published = [item for item in lists.published_lists(session) if item.status == "published"]
    self_url = str(request.url.replace(query=""))
    list_url = self_url.removesuffix(".atom") + "/{list_id}"
    body = publication.openings_atom(published, self_url=self_url, list_url=list_url)
    return Response(body, media_type=ATOM_TYPE)


@router.get(
    "/opportunity-lists/{list_id}",
    response_model=OpportunityListRead,
    tags=["programme"],
    summary="One published opportunity list with its openings (no key needed; drafts for operators)",
)
def get_list(list_id: str, session: SessionDep, caller: PublicReaderDep) -> OpportunityListRead:
    return lists.get_list(session, list_id=list_id, reader=caller)


@router.get(
    "/opportunity-lists/{list_id}/openings.csv",
    tags=["programme"],
    summary="The openings of a published list as CSV, one row each (no key needed)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}},
)
def list_csv(list_id: str, session: SessionDep, caller: PublicReaderDep) -> Response:
    listing = lists.get_list(session, list_id=list_id, reader=caller)
    return Response(
        publication.openings_csv(listing),
        media_type=CSV_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{listing.id}.csv"'},
    )


@router.post(
    "/opportunity-lists/{list_id}/openings",
    response_model=OpportunityListRead,
    status_code=status.HTTP_201_CREATED,
    tags=["programme"],
    summary="Add an opening to a draft list: data offered, conditions, deadline, owning department (operator)",
)
def add_opening(
    list_id: str, payload: OpeningCreate, access: AccessDep, caller: ReaderDep
) -> OpportunityListRead:
    return lists.add_opening(access, actor=caller, list_id=list_id, payload=payload)


@router.post(
    "/opportunity-lists/{list_id}/publish",
    response_model=OpportunityListRead,
    tags=["programme"],
    summary="Publish a draft list: it gets the next number and today's date and becomes public (operator)",
)
def publish_list(list_id: str, access: AccessDep, caller: ReaderDep) -> OpportunityListRead:
    return lists.publish_list(access, actor=caller, list_id=list_id)


# --- applicants -----------------------------------------------------------------------------


@router.post(
    "/applicants",
    response_model=ApplicantRead,
    status_code=status.HTTP_201_CREATED,
    tags=["programme"],
    summary="An organisation registers itself to propose (no key needed; rate-limited per client "
    "address, 429 with Retry-After); an operator vets it",
)
def register_applicant(
    payload: ApplicantCreate,
    access: AccessDep,
    settings: NeedsSettingsDep,
    address: ClientAddressDep,
    _: OptionalPrincipalDep,
) -> ApplicantRead:
    return applicants.register_applicant(access, payload=payload, settings=settings, client_address=address)


@router.get(
    "/applicants", response_model=list[ApplicantRead], tags=["programme"], summary="Applicants (operator)"
)
def list_applicants(
    session: SessionDep,
    caller: ReaderDep,
    status_: Annotated[ApplicantStatus | None, Query(alias="status")] = None,
) -> list[ApplicantRead]:
    return applicants.list_applicants(session, actor=caller, status=status_)


@router.get("/applicants/{applicant_id}", response_model=ApplicantRead, tags=["programme"])
def get_applicant(applicant_id: str, session: SessionDep, caller: ReaderDep) -> ApplicantRead:
    return applicants.get_applicant(session, actor=caller, applicant_id=applicant_id)


@router.post(
    "/applicants/{applicant_id}/vetting",
    response_model=ApplicantVetted,
    tags=["programme"],
    summary="Vet (the organisation becomes a principal; its first key is shown once) or refuse (operator)",
)
def vet_applicant(
    applicant_id: str, payload: ApplicantVetting, access: AccessDep, caller: ReaderDep
) -> ApplicantVetted:
    return applicants.vet_applicant(access, actor=caller, applicant_id=applicant_id, vetting=payload)


# --- proposals ------------------------------------------------------------------------------


@router.post(
    "/openings/{opening_id}/proposals",
    response_model=ProposalRead,
    status_code=status.HTTP_201_CREATED,
    tags=["programme"],
    summary="Answer an opening before its deadline (a vetted organisation)",
)
def submit_proposal(
    opening_id: str, payload: ProposalCreate, access: AccessDep, caller: ReaderDep
) -> ProposalRead:
    return proposals.submit_proposal(access, actor=caller, opening_id=opening_id, payload=payload)


@router.get(
    "/openings/{opening_id}/proposals",
    response_model=ProposalComparison,
    tags=["programme"],
    summary="The opening's proposals side by side (its owning department, operators)",
)
def compare_proposals(opening_id: str, session: SessionDep, caller: ReaderDep) -> ProposalComparison:
    return proposals.compare_proposals(session, actor=caller, opening_id=opening_id)


@router.post(
    "/openings/{opening_id}/selection",
    response_model=SelectionRead,
    tags=["programme"],
    summary="Select one or more proposals: each becomes an approved scenario with draft access requests; "
    "the others are told",
)
def select_proposals(
    opening_id: str, payload: Selection, access: AccessDep, caller: ReaderDep
) -> SelectionRead:
    return proposals.select_proposals(access, actor=caller, opening_id=opening_id, selection=payload)


@router.get(
    "/proposals",
    response_model=list[ProposalRead],
    tags=["programme"],
    summary="The caller's own proposals and their status (a vetted organisation)",
)
def my_proposals(session: SessionDep, caller: ReaderDep) -> list[ProposalRead]:
    return proposals.my_proposals(session, actor=caller)


@router.get("/proposals/{proposal_id}", response_model=ProposalRead, tags=["programme"])
def get_proposal(proposal_id: str, session: SessionDep, caller: ReaderDep) -> ProposalRead:
    return proposals.get_proposal(session, actor=caller, proposal_id=proposal_id)
