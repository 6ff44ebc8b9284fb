"""What every command module shares: the API client, one-line errors, JSON output and the waits.

Command modules import this, never the entry point `mmsearch.cli`, which imports them.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.console import Console

from client.api import ApiClient, ApiClientError
from client.progress import progress as progress_bar
from core.config import get_settings
from core.errors import MmsearchError

console = Console(width=None if sys.stdout.isatty() else 160)  # whole tables in logs too
JOB_FINISHED = ("done", "failed", "cancelled")


def api() -> ApiClient:
    return ApiClient.from_settings()


@contextmanager
def errors() -> Iterator[None]:
    """Known failures become one-line CLI errors instead of tracebacks."""
    try:
        yield
    except (ApiClientError, MmsearchError) as exc:
        raise click.ClickException(str(exc)) from None
    except (FileNotFoundError, TimeoutError, ValueError) as exc:  # before OSError: they say what is wrong
        raise click.ClickException(str(exc)) from None
    except OSError as exc:  # requests' connection errors are OSErrors
        raise click.ClickException(f"cannot reach the API at {get_settings().api.api_base}: {exc}") from None


def echo_json(data: object) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def wait_encoded(client: ApiClient, collection: str) -> dict[str, int]:
    """Block until no document of the collection is pending, with a progress bar; the status counts."""
    with errors():
        counts = client.collection(collection)["documents"]
        with progress_bar(total=counts.get("total", 0), desc="encoding", unit="doc", leave=False) as bar:

            def progress(c: dict) -> None:
                bar.total = c.get("total", 0)
                bar.n = bar.total - c.get("pending", 0)
                bar.refresh()

            return client.wait_encoded(collection, progress=progress)


def wait_job(client: ApiClient, collection: str, job_id: str, poll: float = 1.0) -> dict[str, Any]:
    """Follow a job with a progress bar (documents encoded by the new model) until it ends.

    Polls faster than gunicorn's 2 s keep-alive, so the session never reuses a connection the server is
    closing (a race that surfaces as "Remote end closed connection")."""
    path = f"/v1/collections/{collection}/jobs/{job_id}"
    with errors():
        job = client.request("GET", path)
        with progress_bar(total=job["total"], desc=f"re-encode {job_id}", unit="doc") as bar:
            while job["status"] not in JOB_FINISHED:
                time.sleep(poll)
                job = client.request("GET", path)
                counts = job.get("documents", {})
                bar.total = max(job["total"], counts.get("total", 0))
                done = counts.get("encoded", 0) + counts.get("failed", 0)
                bar.n = done if job["status"] != "done" else bar.total
                bar.set_postfix_str(job["status"])
    return job
