"""The `preflight` activity: every check a run makes before its first change, changing nothing.

For each credential it opens the provider and the stores the run will use and
asks, in order: can the stores be reached and written (where a store can tell),
does each deliver path hold the provider's fields in the shape the run needs,
is the store's credential one the service still has, and does the provider's
own precheck pass in its dry run (quota clean-up reported, not done). Each
failure becomes a Problem with the message the run itself would fail with, so
preflight and the run never disagree; nothing here writes, and no secret value
leaves the activity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager

from temporalio import activity

from keyturn.activities.delivery import Delivery
from keyturn.errors import PermanentError
from keyturn.providers.base import Provider, ProviderContext
from keyturn.runbook.plan_model import CredentialPlan, StorePlan
from keyturn.stores.base import Store
from keyturn.stores.registry import with_capabilities
from keyturn.workflows.models import CredentialCheck, PreflightInput, Problem

PARALLEL_CHECKS = 4
"""Credentials one activity checks at once: each check is a few requests that mostly wait,
and a few at a time stay inside the services' request quotas."""


class Refused(PermanentError):
    """A check found a problem; its message is the problem."""


class PreflightChecks:
    """The preflight activity; providers and stores come from the worker's factories."""

    def __init__(self, *, provider_for: Callable[[str], Provider],
                 store_for: Callable[[StorePlan], Store]) -> None:
        self._provider_for = provider_for
        self._store_for = with_capabilities(store_for)

    @activity.defn(name="preflight")
    def preflight(self, inp: PreflightInput) -> list[CredentialCheck]:
        with ThreadPoolExecutor(max_workers=PARALLEL_CHECKS) as pool:
            return list(pool.map(lambda cred: self.check(inp, cred), inp.credentials))

    def check(self, inp: PreflightInput, cred: CredentialPlan) -> CredentialCheck:
        problems: list[Problem] = []
        notes: list[str] = []

        @contextmanager
        def checking(name: str) -> Iterator[None]:
            try:
                yield
            except Exception as exc:  # noqa: BLE001 - every failure is the check's finding
                problems.append(Problem(check=name, message=str(exc) or type(exc).__name__))
                raise Refused from None

        try:
            with checking("provider"):
                provider = self._provider_for(cred.provider)
                target = provider.target_model.model_validate(cred.target)
                delivery = Delivery(cred, inp.context.stores, self._store_for,
                                    provider.shape(target))
            self._stores(cred, delivery, checking)
            with checking("store shape"):
                current = delivery.check_current()
            ctx = ProviderContext(old_secret=current.secret, credential=cred.id, dry_run=True)
            with checking("provider precheck"):
                delivery.check_not_stale(current, lambda: provider.list_credential_ids(target, ctx))
                found = provider.precheck(target, ctx)
            notes.append(f"would replace {', '.join(found.old_credential_ids) or 'nothing'}")
            notes += [f"would delete inactive {i} to make room (quota)"
                      for i in found.removed_inactive]
        except Refused:
            pass
        return CredentialCheck(credential=cred.id, tier=cred.tier, provider=cred.provider,
                               ready=not problems, problems=problems, notes=notes)

    def _stores(self, cred: CredentialPlan, delivery: Delivery,
                checking: Callable[[str], AbstractContextManager[None]]) -> None:
        """Every store opens, and every path the run writes (staging, targets) may be written."""
        for location in [cred.staging, *delivery.targets()]:
            with checking(f"store {location.store}"):
                problem = delivery.store(location).write_problem(location.path)
                if problem:
                    raise Refused(problem)
