"""HTTP sessions for talking to Vault (or OpenBao) through a flaky network, shared by the
Vault KV store and the Vault PKI provider (a neutral module: neither imports the other).
"""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

RETRIED_STATUSES = (429, 500, 502, 503, 504)
READ_METHODS = frozenset({"GET", "HEAD", "LIST", "OPTIONS"})


def retrying_session() -> requests.Session:
    """A session that retries what a flaky Vault or network gives, a few times within about
    two seconds (honouring Retry-After), before a step fails and Temporal retries the whole
    step: a connection refused (any method: nothing was sent), and a reset connection or a
    429/5xx answer to a read. Writes are not repeated here (check-and-set makes the step's
    own retry safe). Without this, a step that makes several Vault calls fails most of its
    attempts once a few percent of calls fail (seen in the faulty-providers drill)."""
    retry = Retry(total=4, connect=4, read=2, status=4, backoff_factor=0.25,
                  status_forcelist=RETRIED_STATUSES, allowed_methods=READ_METHODS,
                  raise_on_status=False, respect_retry_after_header=True)
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
