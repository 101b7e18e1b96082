"""Bindings: how a capability is served by one tool of a kind of MCP server, written as data.

A binding set names the tools that identify a kind of server (mcp-server-kubernetes offers
`kubectl_get`, `kubectl_rollout`...), whatever name the configuration gives it. Each binding maps
a capability to one of its tools with:

  fixed   argument values that make the tool serve the capability (`subCommand: undo` makes
          kubectl_rollout a rollback); never overridden by `--set`;
  args    argument templates (sandboxed Jinja2 over the request's facts, `${steps.ID.path}` for
          earlier outputs), which `--set` may override;
  output  how to read the fields the playbooks check (see domain/extraction.py);
  yaml_args  arguments whose rendered text must be a YAML mapping (a manifest), checked at plan time;
  read_only  the tool with these fixed values changes nothing (kubectl_rollout with
          `subCommand: status` is annotated destructive because other values are);
  role    `step` serves a step of a plan, `undo` only the undo of another step, `any` both; for an
          undo, the first binding whose arguments can all be filled is taken (re-apply the manifest
          a backup step recorded, else roll the revision back);
  rename  a playbook's argument name -> this tool's parameter, where the name alone would mislead
          (kubectl_rollout's `revision` is the undo target, its `toRevision` is for history);
  ignore  playbook arguments that do not apply to this call (logs read by the deployment's name
          take no label selector: kubectl refuses both), left out and said.
  Templates see the request's facts, `step_args` (the playbook step's own arguments) and
  `backup_step` (the id of a backup step this one waits for, if any).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from opsmith.domain.extraction import Each, check_expression


class Binding(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    capability: str
    tool: str
    fixed: dict[str, Any] = Field(default_factory=dict)
    args: dict[str, Any] = Field(default_factory=dict)
    output: dict[str, str | Each] = Field(default_factory=dict)
    yaml_args: list[str] = Field(default_factory=list, description="arguments that must render as YAML")
    read_only: bool | None = None
    role: Literal["step", "undo", "any"] = "any"
    rename: dict[str, str] = Field(default_factory=dict)
    ignore: list[str] = Field(default_factory=list, description="playbook arguments this call does not use")
    why: str = ""

    @model_validator(mode="after")
    def _expressions_compile(self) -> Binding:
        for name, field in self.output.items():
            expressions = [field] if isinstance(field, str) else [field.each, *field.fields.values()]
            for expression in expressions:
                problem = check_expression(expression)
                if problem:
                    raise ValueError(f"output.{name}: {problem} in {expression!r}")
        both = sorted(set(self.fixed) & set(self.args))
        if both:
            raise ValueError(f"{', '.join(both)}: both fixed and templated; keep one")
        return self


class Inventory(BaseModel):
    """How a kind of server lists the applications it runs: one read-only call and the names
    an expression reads from its output (see domain/extraction.py)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tool: str
    fixed: dict[str, Any] = Field(default_factory=dict)
    names: str

    @model_validator(mode="after")
    def _expression_compiles(self) -> Inventory:
        problem = check_expression(self.names)
        if problem:
            raise ValueError(f"names: {problem} in {self.names!r}")
        return self


class BindingSet(BaseModel):
    """The bindings of one kind of server, recognised by the tools it offers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    description: str = ""
    requires: list[str] = Field(min_length=1, description="tools a server must offer to be of this kind")
    server: str | None = Field(default=None, description="only the configured server of this name")
    bindings: list[Binding] = Field(min_length=1)
    applications: Inventory | None = Field(
        default=None, description="the read-only call that lists what this kind of server runs"
    )

    def fits(self, server: str, tools: set[str]) -> bool:
        if self.server is not None and self.server != server:
            return False
        return set(self.requires) <= tools

    def for_capability(self, capability: str) -> list[Binding]:
        return [b for b in self.bindings if b.capability == capability]


__all__ = ["Binding", "BindingSet", "Inventory"]
