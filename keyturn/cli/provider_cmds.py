"""`keyturn providers`: the installed providers and store types, with their target fields
and the fields of the secret each writes (the names a deliver target's `fields:` maps).

Providers and store types are entry points, so this lists what a runbook may
name on this machine, including those installed from other packages.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich import box

from keyturn.cli.common import OutputFormat, console, fail, print_json, show_view
from keyturn.cli.layout import Sheet
from keyturn.providers.registry import ProviderLoadError, provider_class, provider_names
from keyturn.ratelimits import rate_limit
from keyturn.stores.registry import store_names


def describe_providers() -> list[dict[str, Any]]:
    """One entry per installed provider: name, family, supplied, rate limit, target fields."""
    described = []
    for name in provider_names():
        cls = provider_class(name)
        fields = {
            field: {"required": info.is_required(), "description": info.description or ""}
            for field, info in cls.target_model.model_fields.items()
        }
        shape = cls.shape(None)
        described.append({
            "name": name,
            "family": cls.family,
            "supplied": cls.supplied,
            "secret_fields": list(shape.fields),
            "optional_fields": sorted(shape.optional),
            "reads_current": shape.reads_current,
            "rate_limit": rate_limit(cls.family),
            "target": fields,
            "summary": (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else "",
        })
    return described


def providers_command(
    output: Annotated[OutputFormat, typer.Option("--output", "-o")] = OutputFormat.text,
) -> None:
    """List the installed providers (and store types) a runbook may name, with the fields
    each reads and writes in a store.

    Example: keyturn providers -o json
    """
    try:
        providers = describe_providers()
    except ProviderLoadError as exc:
        fail(str(exc))
    if output == OutputFormat.json:
        print_json({"providers": providers, "stores": store_names()})
        return
    sheet = Sheet(["provider", "family", "rate limit (/s)", "target fields (* required)",
                   "secret fields (? optional)", "what it rotates"],
                  table={"box": box.SIMPLE_HEAD})
    for p in providers:
        fields = ", ".join(f"{k}{'*' if v['required'] else ''}" for k, v in p["target"].items())
        secret = ", ".join(f + ("?" if f in p["optional_fields"] else "")
                           for f in p["secret_fields"])
        summary = p["summary"] + (" (supplied by an operator)" if p["supplied"] else "") + (
            " (needs the current value in the store)" if p["reads_current"] else "")
        sheet.add_row(p["name"], p["family"], f"{p['rate_limit']:g}", fields, secret, summary)
    show_view(sheet)
    console.print(f"store types: {', '.join(store_names())}")


def register(app: typer.Typer) -> None:
    app.command("providers")(providers_command)
