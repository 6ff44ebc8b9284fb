"""`mmsearch kibana export` and `install`: the saved objects (data view, searches, dashboard)."""

from __future__ import annotations

from pathlib import Path

import click

from client import kibana
from core.config import get_settings
from core.es import make_client
from mappings.kibana import FLAVOURS, KIBANA
from mmsearch.common import echo_json, errors


def _render(collections: tuple[str, ...], pending_minutes: int, flavour: str) -> kibana.Rendered:
    settings = get_settings()
    with errors():
        rendered = kibana.render(
            make_client(settings), settings, list(collections) or None, pending_minutes, flavour=flavour
        )
    if rendered.problems:
        raise click.ClickException(
            "the saved objects do not fit the mapping:\n" + "\n".join(rendered.problems)
        )
    return rendered


_options = [
    click.option(
        "--collection", "collections", multiple=True, help="Collection to cover (repeatable); default: all."
    ),
    click.option("--pending-minutes", default=15, show_default=True, help="'Pending too long' after this."),
    click.option("--flavour", type=click.Choice(FLAVOURS), default=KIBANA, show_default=True),
]


def _with_options(func):  # noqa: ANN001, ANN202 - a click decorator stack
    for option in reversed(_options):
        func = option(func)
    return func


@click.group("kibana")
def kibana_group() -> None:
    """Kibana / OpenSearch Dashboards objects for inspecting ingestion, generated from the mappings."""


@kibana_group.command("export")
@_with_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Default: stdout.")
def export(collections: tuple[str, ...], pending_minutes: int, flavour: str, out: Path | None) -> None:
    """Write the saved objects as ndjson (for Stack Management > Saved objects > Import)."""
    text = kibana.to_ndjson(_render(collections, pending_minutes, flavour).objects)
    if out:
        out.write_text(text)
    else:
        click.echo(text, nl=False)


@kibana_group.command("install")
@_with_options
@click.option("--url", default=None, help="Kibana's URL; default: settings (MMSEARCH_KIBANA_URL).")
@click.option("--space", default=None, help="Kibana space (default: the default space).")
@click.option("--wait", default=0.0, show_default=True, help="Seconds to wait for Kibana to come up.")
def install(
    *,
    collections: tuple[str, ...],
    pending_minutes: int,
    flavour: str,
    url: str | None,
    space: str | None,
    wait: float,
) -> None:
    """Import the saved objects through the saved-objects API, overwriting earlier versions."""
    settings = get_settings()
    url = url or settings.engine.kibana_url
    auth = (
        (settings.engine.kibana_username, settings.engine.kibana_password)
        if settings.engine.kibana_username
        else None
    )
    rendered = _render(collections, pending_minutes, flavour)
    with errors():
        if wait:
            kibana.wait_until_up(url, wait, auth)
        answer = kibana.install(url, rendered.objects, flavour, space, auth=auth)
    echo_json(
        {"imported": answer.get("successCount"), "data_view": rendered.objects[0]["attributes"]["title"]}
    )
