"""Domain errors of the scenario programme, each one problem type."""

from __future__ import annotations

from services.common.problems import Conflict, Forbidden, InvalidRequest, NotFound, TooManyRequests


class OpportunityListNotFound(NotFound):
    slug, title = "opportunity-list-not-found", "Opportunity list not found"


class OpeningNotFound(NotFound):
    slug, title = "opening-not-found", "Opening not found"


class ApplicantNotFound(NotFound):
    slug, title = "applicant-not-found", "Applicant not found"


class ProposalNotFound(NotFound):
    slug, title = "proposal-not-found", "Proposal not found"


class ListNotDraft(Conflict):
    slug, title = "opportunity-list-published", "The opportunity list is already published"


class ListEmpty(Conflict):
    slug, title = "opportunity-list-empty", "An opportunity list needs at least one open opening"


class DeadlinePassed(Conflict):
    slug, title = "deadline-passed", "The opening's deadline has passed"


class OpeningDecided(Conflict):
    slug, title = "opening-decided", "The opening's proposals have already been decided"


class AlreadyProposed(Conflict):
    slug, title = "already-proposed", "This applicant has already answered the opening"


class AlreadyVetted(Conflict):
    slug, title = "applicant-vetted", "The applicant has already been vetted or refused"


class AlreadyRegistered(Conflict):
    slug, title = "applicant-exists", "An applicant or principal with this id exists"


class ApplicantNotVetted(Forbidden):
    slug, title = "applicant-not-vetted", "Only a vetted applicant organisation may propose"


class NotTheOpeningOwner(Forbidden):
    slug, title = "not-the-opening-owner", "Only the opening's owning department (or an operator) may do this"


class NotYourProposal(Forbidden):
    slug, title = "not-your-proposal", "Only the proposing organisation may see this proposal"


class DeadlineNotAhead(InvalidRequest):
    slug, title = "deadline-not-ahead", "The deadline must be in the future"


class UnknownProposals(InvalidRequest):
    slug, title = "unknown-proposals", "Proposals that do not answer this opening"


class UnknownProposalFields(InvalidRequest):
    slug, title = "invalid-proposal-data", "The proposal asks for data that cannot be requested"


class RegistrationFlood(TooManyRequests):
    slug, title = "applicant-registration-flood", "Too many registrations from this address; try again later"
