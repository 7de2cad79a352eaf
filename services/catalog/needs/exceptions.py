"""Domain errors of the needs board, each one problem type."""

from __future__ import annotations

from services.common.problems import Conflict, Forbidden, NotFound, TooManyRequests


class NeedNotFound(NotFound):
    slug, title = "need-not-found", "Need not found"


class CommentNotFound(NotFound):
    slug, title = "need-comment-not-found", "Comment not found"


class NeedStateConflict(Conflict):
    slug, title = "need-state-conflict", "The need is not in a state that allows this"


class AlreadyJoined(Conflict):
    slug, title = "need-already-joined", "Already a requester of this need"


class NotTheAnsweringDepartment(Forbidden):
    slug, title = (
        "not-the-answering-department",
        "Only the department the need is routed to, or an operator, may answer it",
    )


class OperatorsOnly(Forbidden):
    slug, title = "need-operators-only", "Only an operator may do this"


class FormFlood(TooManyRequests):
    slug, title = "need-form-flood", "Too many needs from this address; try again later"
