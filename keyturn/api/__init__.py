"""keyturn's HTTP API (FastAPI): runs, gates, supply and audit under /v1, the approvals
page under /ui, bearer-token principals with roles. Build it with `create_app()`."""

from keyturn.api.app import create_app
from keyturn.api.auth import Principal
from keyturn.api.context import ApiSettings

__all__ = ["ApiSettings", "Principal", "create_app"]
