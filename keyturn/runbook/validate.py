"""Checks that need the whole runbook: presence, uniqueness, references and cycles.

Each check is a generator of positioned RunbookErrors; `validate` raises the
first one. Checks run in a fixed order, and later checks may assume that the
earlier ones passed (for example, cycle detection assumes unique ids).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from keyturn.providers.base import SecretShape
from keyturn.runbook.graph import find_cycle
from keyturn.runbook.identity import describe_target, lock_key
from keyturn.runbook.models import RESERVED_PRINCIPALS, Runbook, TierGate
from keyturn.runbook.source import Path, RunbookError

if TYPE_CHECKING:  # keyturn.policy imports the runbook models: imported where used
    from keyturn.policy.model import Policy

_SECRET_KEY = re.compile(
    r"(?:^|_)(?:token|password|passwd|passphrase|secret|secret_id|private_key|api_key|access_key)$"
)


def validate(runbook: Runbook, known_providers: Collection[str] | None = None,
             policy: Policy | None = None) -> Runbook:
    """Raise the first semantic problem as a RunbookError; return the runbook if there is none.

    `known_providers` defaults to the installed providers (keyturn.providers.registry),
    whose target models then check every credential's `target` too. A mapping of
    provider name to target model does the same for other providers. With a
    `policy` file in force, gates draw on its groups, and loosening it is a problem.
    """
    if known_providers is None:
        from keyturn.providers.registry import provider_class, provider_names

        known_providers = {name: provider_class(name).target_model for name in provider_names()}
    from keyturn.policy.model import Policy

    problem = next(problems(runbook, known_providers, policy or Policy.default()), None)
    if problem is not None:
        raise problem
    return runbook


def problems(runbook: Runbook, known_providers: Collection[str],
             policy: Policy) -> Iterator[RunbookError]:
    """Every semantic problem, lazily, in check order."""
    from keyturn.policy import gates as policy_gates

    yield from _presence(runbook)
    yield from _uniqueness(runbook)
    yield from _store_config(runbook)
    yield from _store_types(runbook)
    yield from _credential_references(runbook, known_providers)
    if isinstance(known_providers, Mapping):
        yield from _targets(runbook, known_providers)
    yield from _deliver_fields(runbook)
    yield from _approvers(runbook)
    yield from _gates(runbook, policy_gates.approver_groups(policy, runbook))
    yield from policy_gates.problems(policy, runbook)
    yield from _notify(runbook)
    yield from _tier_order(runbook)
    yield from _credential_order(runbook)
    yield from _staging(runbook)
    yield from _readable_staging(runbook)
    if isinstance(known_providers, Mapping):
        yield from _one_rotation_per_target(runbook, known_providers)


def _tier_path(i: int) -> Path:
    return ("spec", "tiers", i)


def _cred_path(i: int, j: int) -> Path:
    return ("spec", "tiers", i, "credentials", j)


def _suggest(name: str, known: Collection[str], what: str) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f" (known: {', '.join(sorted(known))})" if known else f" (no {what} are defined)"


def _presence(runbook: Runbook) -> Iterator[RunbookError]:
    src = runbook.source
    if not runbook.spec.tiers:
        yield src.error(("spec", "tiers"), "the runbook has no tiers; add at least one")
    for i, tier in enumerate(runbook.spec.tiers):
        if not tier.credentials:
            yield src.error((*_tier_path(i), "credentials"), f"tier '{tier.id}' has no credentials")


def _uniqueness(runbook: Runbook) -> Iterator[RunbookError]:
    src = runbook.source
    tiers: dict[str, Path] = {}
    creds: dict[str, Path] = {}
    for i, tier in enumerate(runbook.spec.tiers):
        path = (*_tier_path(i), "id")
        if tier.id in tiers:
            line = src.position(tiers[tier.id])[0]
            yield src.error(path, f"duplicate tier id '{tier.id}' (first used at line {line})")
        tiers.setdefault(tier.id, path)
        for j, cred in enumerate(tier.credentials):
            path = (*_cred_path(i, j), "id")
            if cred.id in creds:
                line = src.position(creds[cred.id])[0]
                yield src.error(
                    path,
                    f"duplicate credential id '{cred.id}' (first used at line "
                    f"{line}); credential ids are unique across the runbook",
                )
            creds.setdefault(cred.id, path)
    for cid, path in creds.items():  # an approval names its gate by id: one id, one gate
        if cid in tiers:
            line = src.position(tiers[cid])[0]
            yield src.error(path, f"credential id '{cid}' is also a tier id (line {line}); "
                                  "ids are unique across tiers and credentials")


def _store_config(runbook: Runbook) -> Iterator[RunbookError]:
    for name, store in runbook.spec.stores.items():
        for key in store.config:
            if _SECRET_KEY.search(key.lower()):
                yield runbook.source.error(
                    ("spec", "stores", name, key),
                    f"store option '{key}' looks like a secret; a runbook travels through "
                    "workflow history and the audit log, so give the worker its secrets "
                    "through its environment",
                    key=True,
                )


def _store_types(runbook: Runbook) -> Iterator[RunbookError]:
    """Each store's type is an installed store type (their options are checked when the
    store opens: at preflight, or the run's first step)."""
    from keyturn.stores.registry import store_names

    known = store_names()
    for name, store in runbook.spec.stores.items():
        if store.type not in known:
            yield runbook.source.error(("spec", "stores", name, "type"),
                                       f"unknown store type '{store.type}'"
                                       + _suggest(store.type, known, "store types"))


def _credential_references(
    runbook: Runbook, known_providers: Collection[str]
) -> Iterator[RunbookError]:
    src, stores = runbook.source, runbook.spec.stores
    for i, tier in enumerate(runbook.spec.tiers):
        for j, cred in enumerate(tier.credentials):
            if cred.provider not in known_providers:
                yield src.error(
                    (*_cred_path(i, j), "provider"),
                    f"unknown provider '{cred.provider}'"
                    + _suggest(cred.provider, known_providers, "providers"),
                )
            for k, target in enumerate(cred.deliver):
                if target.store not in stores:
                    yield src.error(
                        (*_cred_path(i, j), "deliver", k, "store"),
                        f"unknown store '{target.store}'"
                        + _suggest(target.store, stores, "stores"),
                    )


def _targets(runbook: Runbook, models: Mapping[str, type[BaseModel]]) -> Iterator[RunbookError]:
    """Each credential's `target` against its provider's target model, before anything runs."""
    for i, tier in enumerate(runbook.spec.tiers):
        for j, cred in enumerate(tier.credentials):
            try:
                models[cred.provider].model_validate(cred.target)
            except ValidationError as exc:
                # An unknown field explains a missing one ("username" for "user_name").
                error = min(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
                loc = tuple(error["loc"])
                path = (*_cred_path(i, j), "target")
                if error["type"] == "extra_forbidden":
                    fields = models[cred.provider].model_fields
                    yield runbook.source.error(
                        (*path, *loc),
                        f"{cred.provider} target has no field '{loc[-1]}'"
                        + _suggest(str(loc[-1]), fields, "fields"),
                        key=True,
                    )
                elif error["type"] == "missing":
                    yield runbook.source.error(path, f"{cred.provider} target needs "
                                               f"'{'.'.join(map(str, loc))}'")
                else:
                    yield runbook.source.error((*path, *loc), f"{cred.provider} target field "
                                               f"'{'.'.join(map(str, loc))}': {error['msg']}")


def _shape(provider: str, target: dict) -> SecretShape | None:
    """The installed provider's secret shape for `target`; None if it cannot be known here."""
    from keyturn.providers.registry import ProviderLoadError, provider_class

    try:
        cls = provider_class(provider)
        return cls.shape(cls.target_model.model_validate(target))
    except (ProviderLoadError, ValidationError):
        return None


def _deliver_fields(runbook: Runbook) -> Iterator[RunbookError]:
    """A deliver target's `fields:` maps only its provider's fields, each to its own name."""
    src = runbook.source
    for i, tier in enumerate(runbook.spec.tiers):
        for j, cred in enumerate(tier.credentials):
            mapped = [(k, target) for k, target in enumerate(cred.deliver) if target.fields]
            shape = _shape(cred.provider, cred.target) if mapped else None
            if shape is None:
                continue
            for k, target in mapped:
                path = (*_cred_path(i, j), "deliver", k, "fields")
                for field in target.fields:
                    if field not in shape.fields:
                        yield src.error(
                            (*path, field),
                            f"{cred.provider} has no field '{field}'"
                            + _suggest(field, shape.fields, "fields")
                            + f"; its fields are {', '.join(shape.fields)}",
                            key=True,
                        )
                seen: dict[str, str] = {}
                for field in shape.fields:
                    name = target.fields.get(field, field)
                    if name in seen:
                        yield src.error(
                            (*path, field if field in target.fields else seen[name]),
                            f"fields '{seen[name]}' and '{field}' would both be stored as "
                            f"'{name}'; map each to its own name",
                        )
                    seen.setdefault(name, field)


def _one_rotation_per_target(
    runbook: Runbook, models: Mapping[str, type[BaseModel]]
) -> Iterator[RunbookError]:

    """Two credentials of one runbook may not rotate the same target (same lock key).

    The second would wait for, or be refused by, the first's hold on it. The
    target models decide what "the same" means (defaults filled in), so the
    check runs only where they are known.
    """
    seen: dict[str, tuple[str, Path]] = {}
    for i, tier in enumerate(runbook.spec.tiers):
        for j, cred in enumerate(tier.credentials):
            key = lock_key(cred.provider, cred.target, models.get(cred.provider))
            path = (*_cred_path(i, j), "target")
            if key in seen:
                first, first_path = seen[key]
                line = runbook.source.position(first_path)[0]
                yield runbook.source.error(
                    path,
                    f"credential '{cred.id}' rotates the same {cred.provider} target "
                    f"({describe_target(cred.target)}) as credential '{first}' (target at line "
                    f"{line}); a run rotates each target once: keep one of them",
                )
            seen.setdefault(key, (cred.id, path))



_SECRET_WEBHOOK_HOSTS = ("hooks.slack.com",)


def _approvers(runbook: Runbook) -> Iterator[RunbookError]:
    for group, principals in runbook.spec.approvers.items():
        for k, principal in enumerate(principals):
            if principal in RESERVED_PRINCIPALS:
                yield runbook.source.error(
                    ("spec", "approvers", group, k),
                    f"'{principal}' is a name keyturn uses in the audit log for itself "
                    "and cannot be an approver",
                )


def _notify(runbook: Runbook) -> Iterator[RunbookError]:
    """A Slack webhook URL is a credential: it belongs in the worker's environment."""
    for k, target in enumerate(runbook.spec.notify):
        host = (urlsplit(target.url).hostname or "") if target.url else ""
        if host in _SECRET_WEBHOOK_HOSTS:
            yield runbook.source.error(
                ("spec", "notify", k, "url"),
                f"a {host} URL is a secret and a runbook travels through workflow history: "
                "put it in an environment variable of the worker and name that variable "
                "with 'url_env'",
            )


def _gates(runbook: Runbook, groups: Mapping[str, list[str]]) -> Iterator[RunbookError]:
    for i, tier in enumerate(runbook.spec.tiers):
        if tier.gate is not None:
            yield from _gate(runbook, groups, tier.gate, (*_tier_path(i), "gate"))
        for j, cred in enumerate(tier.credentials):
            if cred.gate is not None:
                yield from _gate(runbook, groups, cred.gate, (*_cred_path(i, j), "gate"))


def _gate(runbook: Runbook, groups: Mapping[str, list[str]], gate: TierGate,
          path: Path) -> Iterator[RunbookError]:
    src = runbook.source
    principals: set[str] = set()
    for k, group in enumerate(gate.from_):
        if group not in groups:
            reason = f"unknown approver group '{group}'" + _suggest(group, groups, "groups")
            yield src.error((*path, "from", k), reason)
        principals.update(groups.get(group, ()))
    if gate.approvals > len(principals):
        yield src.error(
            (*path, "approvals"),
            f"the gate needs {gate.approvals} approvals but its groups "
            f"({', '.join(gate.from_)}) have only {len(principals)} distinct principals",
        )


def _tier_order(runbook: Runbook) -> Iterator[RunbookError]:
    src, tiers = runbook.source, runbook.spec.tiers
    ids = [tier.id for tier in tiers]
    for i, tier in enumerate(tiers):
        for k, name in enumerate(tier.after):
            if name not in ids:
                yield src.error(
                    (*_tier_path(i), "after", k),
                    f"unknown tier '{name}' in after" + _suggest(name, ids, "tiers"),
                )
    cycle = find_cycle({tier.id: tier.after for tier in tiers})
    if cycle:
        yield src.error(
            (*_tier_path(ids.index(cycle[0])), "after"),
            f"tiers form a cycle through 'after': {' -> '.join(cycle)}",
        )


def _credential_order(runbook: Runbook) -> Iterator[RunbookError]:
    src = runbook.source
    home = {cred.id: tier.id for tier in runbook.spec.tiers for cred in tier.credentials}
    for i, tier in enumerate(runbook.spec.tiers):
        ids = [cred.id for cred in tier.credentials]
        for j, cred in enumerate(tier.credentials):
            for k, name in enumerate(cred.depends_on):
                if name in ids:
                    continue
                reason = (
                    f"'{name}' is in tier '{home[name]}'; depends_on names credentials of the "
                    "same tier (order tiers with 'after')"
                    if name in home
                    else f"unknown credential '{name}' in depends_on" + _suggest(name, ids, "ids")
                )
                yield src.error((*_cred_path(i, j), "depends_on", k), reason)
        cycle = find_cycle({cred.id: cred.depends_on for cred in tier.credentials})
        if cycle:
            yield src.error(
                (*_cred_path(i, ids.index(cycle[0])), "depends_on"),
                f"credentials form a cycle through 'depends_on': {' -> '.join(cycle)}",
            )


def _staging(runbook: Runbook) -> Iterator[RunbookError]:
    if runbook.spec.stores:
        return
    for i, tier in enumerate(runbook.spec.tiers):
        for j, cred in enumerate(tier.credentials):
            if not cred.deliver:
                yield runbook.source.error(
                    (*_cred_path(i, j), "deliver"),
                    f"credential '{cred.id}' has no deliver target and spec.stores is empty: "
                    "there is nowhere to stage its new value",
                )


def _store_readable(store_type: str) -> bool:
    """False for a write-only store type (GitHub Actions secrets); unknown types pass here."""
    from keyturn.stores.registry import StoreLoadError, store_class

    try:
        return store_class(store_type).readable
    except StoreLoadError:
        return True


def _readable_staging(runbook: Runbook) -> Iterator[RunbookError]:
    """The first deliver target stages the new value and keeps the old one: it must read back."""
    stores = runbook.spec.stores
    for i, tier in enumerate(runbook.spec.tiers):
        for j, cred in enumerate(tier.credentials):
            if cred.deliver:
                name, path = cred.deliver[0].store, (*_cred_path(i, j), "deliver", 0, "store")
            elif stores:
                name, path = next(iter(stores)), (*_cred_path(i, j), "id")
            else:
                continue
            store = stores.get(name)
            if store is not None and not _store_readable(store.type):
                yield runbook.source.error(
                    path,
                    f"credential '{cred.id}' would stage its new value in store '{name}' "
                    f"({store.type}), which cannot be read back; list a readable store "
                    "(vault_kv, aws_secrets_manager) first in its deliver targets",
                )
