"""The policy file's format (apiVersion keyturn/v1, kind Policy) and its own consistency rules.

    apiVersion: keyturn/v1
    kind: Policy
    groups:                      # the approver groups; a runbook may only narrow them
      security: [alice, carol]
      ops: [bob, dave]
    requesters_may_approve: false
    cancel_others: [security]    # who may cancel a run someone else requested
    gates:                       # the minimum gates; a runbook may add, never remove
      - before: revoke
        providers: ["aws.*"]
        from: [security]
        approvals: 2

A rule applies where every one of its `runbooks`, `providers` and `tiers` lists
has a matching glob (`*` by default). `before: tier` guards a tier that holds
a matching credential (or any tier, when `providers` is left at `*`).
"""

from __future__ import annotations

from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from keyturn.runbook.models import RESERVED_PRINCIPALS, GroupNames, Principal, Slug
from keyturn.runbook.plan_model import GatePoint
from keyturn.runbook.source import RunbookError, SourceMap


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


Globs = list[str]


class GateRule(_Strict):
    """A gate every matching tier or credential must have, at least this strict."""

    before: GatePoint
    from_: GroupNames = Field(alias="from")
    approvals: int = Field(1, ge=1)
    distinct: bool = False
    runbooks: Globs = Field(default_factory=lambda: ["*"], min_length=1)
    providers: Globs = Field(default_factory=lambda: ["*"], min_length=1)
    tiers: Globs = Field(default_factory=lambda: ["*"], min_length=1)

    def applies(self, runbook: str, tier: str, providers: list[str]) -> bool:
        """Whether the rule covers this tier (or one credential, as its only provider):
        `providers` are the providers of the credentials it guards."""
        return (_any(self.runbooks, runbook) and _any(self.tiers, tier)
                and (self.providers == ["*"] or any(_any(self.providers, p) for p in providers)))


def _any(globs: Globs, name: str) -> bool:
    return any(fnmatchcase(name, glob) for glob in globs)


class Policy(_Strict):
    """A whole policy file; `sha256` is the hash of its bytes ("" for the built-in default)."""

    api_version: Literal["keyturn/v1"] = Field(alias="apiVersion")
    kind: Literal["Policy"]
    groups: dict[Slug, list[Principal]] | None = None
    requesters_may_approve: bool = False
    cancel_others: GroupNames | None = None
    gates: list[GateRule] = Field(default_factory=list)

    _sha256: str = PrivateAttr(default="")
    _source: SourceMap | None = PrivateAttr(default=None)

    @classmethod
    def default(cls, *, requesters_may_approve: bool = False) -> Policy:
        """No policy file: the runbook names its approver groups and gates; the requester
        approves only where the server's settings allow it."""
        return cls(apiVersion="keyturn/v1", kind="Policy",
                   requesters_may_approve=requesters_may_approve)

    @property
    def sha256(self) -> str:
        return self._sha256

    @property
    def from_file(self) -> bool:
        """Whether a policy file is in force (groups and gates come from it)."""
        return self.groups is not None

    def members(self, groups: list[str]) -> set[str]:
        return {p for g in groups for p in (self.groups or {}).get(g, [])}

    def may_cancel(self, principal: str, requested_by: str) -> bool:
        """Whether `principal` may cancel a run `requested_by` started."""
        if principal == requested_by or self.cancel_others is None:
            return True
        return principal in self.members(self.cancel_others)

    def problems(self) -> Iterator[RunbookError]:
        """What makes the file inconsistent, each at its place in the file."""
        source = self._source or SourceMap("<policy>")
        if self.groups is None:
            yield source.error((), "a policy names its approver groups under 'groups'")
            return
        for group, principals in self.groups.items():
            for k, principal in enumerate(principals):
                if principal in RESERVED_PRINCIPALS:
                    yield source.error(("groups", group, k),
                                       f"'{principal}' is a name keyturn uses for itself")
        for k, group in enumerate(self.cancel_others or []):
            if group not in self.groups:
                yield source.error(("cancel_others", k), f"unknown group '{group}'")
        for i, rule in enumerate(self.gates):
            for k, group in enumerate(rule.from_):
                if group not in self.groups:
                    yield source.error(("gates", i, "from", k), f"unknown group '{group}'")
            if rule.approvals > len(self.members(rule.from_)):
                yield source.error(("gates", i, "approvals"),
                                   f"the rule needs {rule.approvals} approvals but its groups "
                                   f"have only {len(self.members(rule.from_))} principals")
