"""Re-encode jobs as the API sees them: one object bound to the deployment's engine and settings, so the
HTTP routes start, list, show and cancel jobs without holding an engine client themselves."""

from __future__ import annotations

from typing import Any

from core.config import Settings
from core.es import Client
from workers import reencode, reencode_job


class ReencodeJobs:
    def __init__(self, es: Client, settings: Settings) -> None:
        self.es = es
        self.settings = settings

    def start(self, name: str, models: dict[str, str]) -> dict[str, Any]:
        return reencode.start_reencode(self.es, self.settings, name, models)

    def list(self, name: str) -> list[dict[str, Any]]:
        return reencode_job.list_jobs(self.es, self.settings, name)

    def show(self, name: str, job_id: str) -> dict[str, Any]:
        return reencode_job.job_view(self.es, self.settings, name, job_id)

    def cancel(self, name: str, job_id: str) -> dict[str, Any]:
        return reencode.cancel_job(self.es, self.settings, name, job_id)
