"""Doctor's Temporal checks: the server and namespace, keyturn's search attributes, the
workers polling its task queues, and the codec key the workers use.

The codec check is a known-answer check without the key: every client keyturn
connects names its codec key's id (a hash prefix, already in every encrypted
payload's metadata) in its identity (keyturn.operations.connect.identity), and
the server lists the identity of each worker polling a queue. So doctor
compares the id of its own KEYTURN_CODEC_KEY with the id each polling worker
reports; it covers the workers polling now, not ones that are stopped.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from keyturn.codec import key_id, parse_key
from keyturn.config import ConfigError
from keyturn.devstack.servers import KEYTURN_SEARCH_ATTRIBUTES
from keyturn.doctor.base import Context, Finding, failed, needs_temporal, ok, skipped
from keyturn.operations.connect import CODEC_MARK
from keyturn.workflows.common import family_queue

START_WORKER = ("start one with `keyturn worker` (every family) or `keyturn worker --queue "
                "NAME`, with this KEYTURN_TEMPORAL_ADDRESS, KEYTURN_NAMESPACE and "
                "KEYTURN_TASK_QUEUE")


async def temporal(ctx: Context) -> Finding:
    s = ctx.settings
    try:
        client = await ctx.client()
    except ConfigError as exc:
        return failed("temporal", f"cannot connect to {s.temporal_address}", str(exc))
    try:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=s.namespace))
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return failed("temporal", f"namespace {s.namespace!r} does not exist",
                          f"create it (`temporal operator namespace create --address "
                          f"{s.temporal_address} {s.namespace}`) or set KEYTURN_NAMESPACE")
        return failed("temporal", f"cannot describe namespace {s.namespace!r}: {exc.message}",
                      "check KEYTURN_NAMESPACE and the API key's or certificate's permissions")
    return ok("temporal", f"{s.temporal_address}, namespace {s.namespace}, "
              f"{s.temporal_auth.describe()}")


def add_attributes_command(address: str, namespace: str, names: list[str]) -> str:
    """The `temporal` command that registers `names` as Keyword search attributes."""
    flags = " ".join(f"--name {name} --type Keyword" for name in names)
    return (f"temporal operator search-attribute create --address {address} "
            f"--namespace {namespace} {flags}")


async def search_attributes(ctx: Context) -> Finding:
    client = await needs_temporal(ctx, "search attributes")
    if isinstance(client, Finding):
        return client
    s = ctx.settings
    answer = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=s.namespace))
    missing = [name for name in KEYTURN_SEARCH_ATTRIBUTES if name not in answer.custom_attributes]
    if missing:
        return failed("search attributes", f"not registered in namespace {s.namespace}: "
                      f"{', '.join(missing)}",
                      f"run `{add_attributes_command(s.temporal_address, s.namespace, missing)}`")
    return ok("search attributes", ", ".join(KEYTURN_SEARCH_ATTRIBUTES))


def _queues(ctx: Context) -> list[tuple[str, int]]:
    from keyturn.worker import installed_families  # the provider registry: loaded on use

    queue = ctx.settings.task_queue
    return [(queue, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)] + [
        (family_queue(queue, f), TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
        for f in installed_families()]


async def _pollers(client: Client, name: str, kind: int) -> list[str]:
    """The identities of the workers polling `name` now."""
    answer = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=name), task_queue_type=kind))
    return [p.identity for p in answer.pollers]


async def workers(ctx: Context) -> Finding:
    client = await needs_temporal(ctx, "workers")
    if isinstance(client, Finding):
        return client
    queues = _queues(ctx)
    idle = [name for name, kind in queues if not await _pollers(client, name, kind)]
    if idle:
        return failed("workers", f"no worker polls {', '.join(idle)}", START_WORKER)
    return ok("workers", f"{len(queues)} task queue(s) polled ({queues[0][0]} and its families)")


async def codec_key(ctx: Context) -> Finding:
    key = ctx.settings.codec_key
    if not key:
        return failed("codec key", "KEYTURN_CODEC_KEY is not set: payloads in history are "
                      "not encrypted", "set KEYTURN_CODEC_KEY (`python -c 'from keyturn.codec "
                      "import new_key; print(new_key())'`) on the workers and every client")
    try:
        mine = key_id(parse_key(key))
    except ConfigError as exc:
        return failed("codec key", str(exc), "set KEYTURN_CODEC_KEY to the workers' key")
    client = await needs_temporal(ctx, "codec key")
    if isinstance(client, Finding):
        return client
    reported = {ident.partition(CODEC_MARK)[2] or "?": ident.partition(CODEC_MARK)[0]
                for name, kind in _queues(ctx) for ident in await _pollers(client, name, kind)}
    if not reported:
        return skipped("codec key", f"set (key id {mine}); no worker polls to compare with")
    other = {kid: who for kid, who in reported.items() if kid != mine}
    if not other:
        return ok("codec key", f"key id {mine}, the same as every polling worker's")
    named = "; ".join(f"worker {who} uses " + ("no key" if kid == "none" else
                      "a key it does not report" if kid == "?" else f"key id {kid}")
                      for kid, who in sorted(other.items()))
    return failed("codec key", f"this client's key id is {mine}; {named}",
                  "set the same KEYTURN_CODEC_KEY for the workers and every client, then "
                  "restart the workers")
