"""Which credential of a tier may start next: depends_on as a ready queue, in O(n).

Pure and deterministic, for TierWorkflow. A credential becomes ready when all
of its dependencies succeeded; if any dependency ends otherwise it is skipped,
and so, in turn, are the credentials that depend on it. Outcomes carried over
from an earlier run of the workflow (continue-as-new) count as finished.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Mapping, Sequence

from keyturn.runbook.plan_model import CredentialPlan
from keyturn.workflows.models import Outcome

FINISHED: frozenset[str] = frozenset({"succeeded", "failed", "skipped", "cancelled"})


class TierSchedule:
    def __init__(self, credentials: Sequence[CredentialPlan],
                 finished: Mapping[str, Outcome] | None = None) -> None:
        finished = finished or {}
        self.outcomes: dict[str, Outcome] = {c.id: finished.get(c.id, "pending") for c in credentials}
        self.reasons: dict[str, str] = {}
        self.changes = 0  # bumps on every finish, so a workflow can wait for "something changed"
        self._dependents: dict[str, list[str]] = defaultdict(list)
        self._waiting: dict[str, int] = {}
        self._ready: deque[str] = deque()
        for cred in credentials:
            for dep in cred.depends_on:
                self._dependents[dep].append(cred.id)
            self._waiting[cred.id] = sum(self.outcomes[d] not in FINISHED for d in cred.depends_on)
        for cred in credentials:
            if self.outcomes[cred.id] != "pending":
                continue
            blocked = [d for d in cred.depends_on
                       if self.outcomes[d] in FINISHED and self.outcomes[d] != "succeeded"]
            if blocked:
                self._skip(cred.id, blocked)
        self._ready.extend(c.id for c in credentials
                           if self.outcomes[c.id] == "pending" and self._waiting[c.id] == 0)

    @property
    def done(self) -> bool:
        return all(o in FINISHED for o in self.outcomes.values())

    def finished(self) -> dict[str, Outcome]:
        return {cid: o for cid, o in self.outcomes.items() if o in FINISHED}

    def next_ready(self) -> str | None:
        """The next credential whose dependencies all succeeded, in runbook order of readiness."""
        while self._ready:
            cid = self._ready.popleft()
            if self.outcomes[cid] == "pending":
                return cid
        return None

    def start(self, cid: str) -> None:
        self.outcomes[cid] = "running"

    def finish(self, cid: str, outcome: Outcome) -> None:
        self.outcomes[cid] = outcome
        self.changes += 1
        for dependent in self._dependents[cid]:
            if self.outcomes[dependent] != "pending":
                continue
            if outcome != "succeeded":
                self._skip(dependent, [cid])
                continue
            self._waiting[dependent] -= 1
            if self._waiting[dependent] == 0:
                self._ready.append(dependent)

    def cancel(self) -> None:
        """The tier was cancelled: every credential that had not finished ends cancelled."""
        for cid, outcome in self.outcomes.items():
            if outcome not in FINISHED:
                self.outcomes[cid] = "cancelled"
        self.changes += 1

    def _skip(self, cid: str, blocked: list[str]) -> None:
        stack = [(cid, blocked)]
        while stack:
            current, because = stack.pop()
            if self.outcomes[current] != "pending":
                continue
            self.outcomes[current] = "skipped"
            self.reasons[current] = f"skipped: depends on {', '.join(because)}, which did not succeed"
            stack.extend((d, [current]) for d in self._dependents[current])
