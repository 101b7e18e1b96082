"""Request bodies and list pages: validated before any service sees them."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

Scalar = str | int | float | bool
# The largest number the store can compare with (SQLite's INTEGER): a larger offset is a 422, not a 500.
MAX_INT = 2**63 - 1


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlanRequest(_Body):
    request: str = Field(min_length=1, max_length=4000, description="the request, in plain language")
    set: dict[str, Scalar] = Field(
        default_factory=dict, description="values to fill in, as `opsmith plan --set KEY=VALUE`"
    )


class Amendment(_Body):
    set: dict[str, Scalar] = Field(min_length=1, description="values to change or fill in")


class ApprovalBody(_Body):
    hash: str = Field(
        min_length=8, max_length=100, description="the hash of the plan as you reviewed it: the pin"
    )
    comment: str = Field(default="", max_length=2000)


class Comment(_Body):
    comment: str = Field(default="", max_length=2000)


class ResumeBody(_Body):
    choice: Literal["retry", "skip", "rollback"] | None = Field(
        default=None, description="for steps a crash interrupted: run again, skip, or roll back"
    )
    step: str | None = Field(default=None, max_length=160, description="one step; all undecided when absent")


class CancelBody(_Body):
    rollback: bool = Field(default=False, description="also undo what the run did, in reverse order")


class ToolCallBody(_Body):
    arguments: dict[str, Any] = Field(default_factory=dict)
    confirm: bool = Field(default=False, description="confirm a tool that may destroy something")
    timeout: float | None = Field(default=None, gt=0, le=3600)


class RoleBody(_Body):
    role: str = Field(min_length=1, max_length=64)


class TokenBody(_Body):
    user: str = Field(min_length=1, max_length=128)
    role: str = Field(min_length=1, max_length=64)
    name: str = Field(default="", max_length=128)


class Page(BaseModel, Generic[T]):
    items: list[T]
    limit: int
    offset: int
    next_offset: int | None = Field(description="the offset of the next page; null on the last one")


def page(items: list[T], limit: int, offset: int) -> Page[T]:
    # One more than asked is never fetched, so a full page may be the last: the next one is empty.
    return Page(
        items=items, limit=limit, offset=offset, next_offset=offset + limit if len(items) == limit else None
    )
