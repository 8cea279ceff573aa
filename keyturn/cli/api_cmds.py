"""`keyturn serve` (the HTTP API and approvals page) and `keyturn api token add`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from keyturn.cli.common import OutputFormat, console, err_console, fail, print_json

app = typer.Typer(help="Manage the HTTP API's principals and tokens.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (only their SHA-256 is stored).", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("add")
def token_add(
    name: Annotated[str, typer.Argument(help="principal name, as runbook approver groups list it")],
    role: Annotated[list[str], typer.Option(
        "--role", help="operator, approver or auditor (repeatable)")],
    tokens: Annotated[Path | None, typer.Option(
        "--tokens", help="token file (default: $KEYTURN_API_TOKENS or .keyturn/api-tokens.yaml)")
    ] = None,
    output: Annotated[OutputFormat, typer.Option("--output", "-o", help="text or json")] = (
        OutputFormat.text),
) -> None:
    """Create a token for NAME (replacing any earlier one) and print it once."""
    from keyturn.api.auth import TokenFileError, add_token, tokens_path

    path = tokens or tokens_path()
    try:
        token = add_token(path, name, role)
    except (TokenFileError, OSError) as exc:
        fail(str(exc))
    roles = sorted(set(role))
    if output == OutputFormat.json:
        print_json({"principal": name, "roles": roles, "token": token, "tokens_file": str(path)})
        return
    err_console.print(f"token for [bold]{name}[/] ({', '.join(roles)}) written to {path} "
                      "as a hash; shown only now:", highlight=False)
    console.print(token, highlight=False, soft_wrap=True)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="api")

    @root.command()
    def serve(
        host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="port to listen on")] = 8080,
    ) -> None:
        """Serve the HTTP API (/v1, /openapi.json) and the approvals page (/ui)."""
        import uvicorn

        from keyturn.api import create_app
        from keyturn.config import ConfigError

        try:
            application = create_app()
        except ConfigError as exc:
            fail(str(exc))
        console.print(f"keyturn API on http://{host}:{port} (OpenAPI /openapi.json, approvals /ui)")
        uvicorn.run(application, host=host, port=port, log_level="info")
