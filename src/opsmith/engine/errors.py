"""Errors of the engine's pure core, in opsmith's one hierarchy (see opsmith.domain.errors)."""

from __future__ import annotations

from opsmith.domain.errors import NotFoundError, OperationError, UsageError

__all__ = [
    "EvidenceUnmet",
    "IllegalTransition",
    "InvalidSetting",
    "NoRollback",
    "UnknownStep",
    "UnresolvedReference",
]


class IllegalTransition(UsageError):
    """A run or step asked to move to a status its current one does not allow (e.g. cancel a finished run)."""


class UnknownStep(NotFoundError):
    """A step id that the plan or the run does not have."""


class InvalidSetting(UsageError):
    """An engine setting out of range: a retry policy, a parallelism limit, a random draw."""


class NoRollback(UsageError):
    """Undo was asked of a step whose plan gives it no rollback action."""


class UnresolvedReference(OperationError):
    """An argument's `${steps.ID.path}` names a step or a path that has no value at run time."""


class EvidenceUnmet(OperationError):
    """A step may not start: a compliance requirement guarding it is not proven by its evidence step."""
