"""A promote whose write reached the store but whose version metadata did not (Vault KV
writes data and metadata in two calls) is retried without losing the consumer's path: the
failed attempt gives the path its old fields back as a new version, never destroys it.
Found by the faulty-providers drill (tests/drills/test_faulty_providers.py)."""

from __future__ import annotations

from test_workflow_protocol import HEADER, assert_rotated, cred, seed, start
from workflow_env import harness

from keyturn.stores.base import StoredVersion
from keyturn.stores.errors import TransientStoreError


async def test_metadata_lost_on_promote_keeps_the_old_versions(tmp_path):
    text = HEADER + "    - id: tier1\n      credentials:\n" + cred("a")
    async with harness(tmp_path) as h:
        old = seed(h, "a")
        old_secret = h.store.read("app/a").secret
        real_write = h.store.write
        failed = []

        def write(path, secret, metadata, cas=None):
            if path == "app/a" and not failed and metadata.get("keyturn_run"):
                failed.append(path)  # the data is stored, its metadata is not
                h.store.paths[path].append(StoredVersion(
                    secret=dict(secret), version=len(h.store.paths[path]) + 1, metadata={}))
                raise TransientStoreError("write metadata of version 2 failed: 503")
            return real_write(path, secret, metadata, cas=cas)

        h.store.write = write
        _, handle = await start(h, text)
        result = await handle.result()

        assert failed and result.state == "succeeded"
        assert_rotated(h, "a", old["a"])
        assert h.store.read("app/a", version=1).secret == old_secret
        assert h.store.read("app/a", version=3).secret == old_secret  # restored, then retried
