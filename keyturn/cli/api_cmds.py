"""The long-running processes, `keyturn worker` and `keyturn serve` (the HTTP API and approvals
page), and `keyturn api token add | revoke`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from keyturn.cli.common import (
    LogFormat,
    OutputFormat,
    chosen_log_format,
    console,
    err_console,
    fail,
    print_json,
)

app = typer.Typer(help="Manage the HTTP API's principals and tokens.", no_args_is_help=True)
TokensOption = Annotated[Path | None, typer.Option(
    "--tokens", help="token file (default: $KEYTURN_API_TOKENS or .keyturn/api-tokens.yaml)")]
token_app = typer.Typer(help="API tokens (only their SHA-256 is stored).", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("add")
def token_add(
    name: Annotated[str, typer.Argument(help="principal name, as runbook approver groups list it")],
    role: Annotated[list[str], typer.Option(
        "--role", help="operator, approver or auditor (repeatable)")],
    tokens: TokensOption = None,
    expires: Annotated[str | None, typer.Option(
        "--expires", help='lifetime, e.g. "30d", "12h" (default: until revoked)')] = None,
    output: Annotated[OutputFormat, typer.Option("--output", "-o", help="text or json")] = (
        OutputFormat.text),
) -> None:
    """Create a token for NAME (replacing any earlier one) and print it once.

    Example: keyturn api token add bob --role approver
    """
    from keyturn.api.auth import TokenFileError, add_token, tokens_path
    from keyturn.durations import parse_duration

    path = tokens or tokens_path()
    try:
        lifetime = parse_duration(expires) if expires is not None else None
    except ValueError as exc:
        fail(f"--expires: {exc}")
    try:
        token = add_token(path, name, role, expires_in=lifetime)
    except (TokenFileError, OSError) as exc:
        fail(str(exc))
    roles = sorted(set(role))
    if output == OutputFormat.json:
        print_json({"principal": name, "roles": roles, "token": token, "tokens_file": str(path),
                    "expires_in_seconds": int(lifetime.total_seconds()) if lifetime else None})
        return
    until = f", expires in {expires}" if expires else ""
    err_console.print(Text(f"token for {name} ({', '.join(roles)}{until}) written to {path} "
                           "as a hash; shown only now:"), highlight=False)
    console.print(token, highlight=False, soft_wrap=True)


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="the principal whose token to remove")],
    tokens: TokensOption = None,
) -> None:
    """Remove NAME's token: its API requests and page sessions are refused from now on.

    Example: keyturn api token revoke bob
    """
    from keyturn.api.auth import TokenFileError, revoke_token, tokens_path

    path = tokens or tokens_path()
    try:
        revoke_token(path, name)
    except (TokenFileError, OSError) as exc:
        fail(str(exc))
    err_console.print(Text(f"token of {name} revoked in {path}"), highlight=False)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="api")

    @root.command()
    def worker(
        queue: Annotated[list[str] | None, typer.Option(
            "--queue", help="serve only this queue: `workflows` or a provider family "
            "(repeatable; default: all)")] = None,
        metrics_port: Annotated[int | None, typer.Option(
            "--metrics-port", help="serve keyturn's Prometheus metrics at :PORT/metrics")] = None,
        temporal_metrics_port: Annotated[int | None, typer.Option(
            "--temporal-metrics-port",
            help="serve the Temporal SDK's metrics at :PORT/metrics")] = None,
        metrics_address: Annotated[str, typer.Option(
            "--metrics-address", help="address the metrics ports listen on")] = "127.0.0.1",
        log_format: LogFormat = None,
    ) -> None:
        """Run a worker (same as `python worker.py`): workflows and every provider family's queue.

        Example: keyturn worker --queue workflows --queue aws --metrics-port 9464 --log-format json
        """
        from keyturn.worker import MetricsPorts, main

        main(queue or (), MetricsPorts(metrics_port, temporal_metrics_port, metrics_address),
             chosen_log_format(log_format))

    @root.command()
    def serve(
        host: Annotated[str, typer.Option("--host", help="address to listen on")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="port to listen on")] = 8080,
        tls_cert: Annotated[Path | None, typer.Option(
            "--tls-cert", help="PEM certificate (chain): serve HTTPS")] = None,
        tls_key: Annotated[Path | None, typer.Option(
            "--tls-key", help="PEM private key of --tls-cert")] = None,
        insecure_http: Annotated[bool, typer.Option(
            "--insecure-http", help="DANGEROUS: allow plain HTTP on a non-loopback --host "
            "(only behind a TLS proxy on a private network; logged)")] = False,
        trusted_proxy: Annotated[list[str] | None, typer.Option(
            "--trusted-proxy", help="address of a proxy whose X-Forwarded-Proto/-For are "
            "believed (repeatable; default: none)")] = None,
        log_format: LogFormat = None,
    ) -> None:
        """Serve the HTTP API (/v1, /openapi.json), the approvals page (/ui) and /metrics.

        A non-loopback --host needs --tls-cert and --tls-key (or --insecure-http).

        Example: keyturn serve --host 0.0.0.0 --port 8443 --tls-cert tls.crt --tls-key tls.key
        """
        import uvicorn

        from keyturn.api import create_app
        from keyturn.api.transport import Listen, TransportRefused
        from keyturn.config import ConfigError
        from keyturn.logfmt import configure_logging

        listen = Listen(host, port, tls_cert, tls_key, insecure_http, tuple(trusted_proxy or ()))
        try:
            listen.check()
            application = create_app()
        except (TransportRefused, ConfigError) as exc:
            fail(str(exc))
        chosen = chosen_log_format(log_format)
        configure_logging(chosen, "%(levelname)s:     %(name)s: %(message)s")
        if warning := listen.warn_if_insecure():
            err_console.print(Text.assemble(("WARNING:", "bold red"), " ", warning))
        console.print(f"keyturn API on {listen.scheme}://{host}:{port} "
                      "(OpenAPI /openapi.json, approvals /ui)", highlight=False)
        # json: uvicorn's own loggers go through the root handler's JSON formatter
        uvicorn.run(application, log_level="info", **listen.uvicorn(),
                    **({"log_config": None} if chosen == "json" else {}))
