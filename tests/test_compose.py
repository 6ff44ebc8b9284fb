"""The docker-compose files (no Docker engine here): they parse, and every mmsearch service is configured
with variables the settings read, pointing at the engine the file runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import AliasChoices

from core.config import Settings, env_names

ROOT = Path(__file__).resolve().parent.parent
FILES = {
    "docker-compose.yml": ("elasticsearch", None),
    "docker-compose.opensearch.yml": ("opensearch", "opensearch"),
}


def _setting_names() -> set[str]:
    names = {key for _, _, key in env_names()}
    for section in Settings.model_fields.values():  # and every other alias a field accepts
        for field in section.annotation.model_fields.values():
            alias = field.validation_alias
            names |= {str(a) for a in alias.choices} if isinstance(alias, AliasChoices) else set()
    return names


@pytest.mark.parametrize("filename", sorted(FILES))
def test_app_services_use_existing_settings_and_the_files_engine(
    filename: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    compose = yaml.safe_load((ROOT / filename).read_text())
    engine_service, engine = FILES[filename]
    services = compose["services"]
    assert engine_service in services
    app = {name: s for name, s in services.items() if s.get("image") == "mmsearch:latest"}
    assert {"api", "worker"} <= set(app) and len(app) == 3  # + the dashboards setup job
    known = _setting_names()
    for name, service in app.items():
        env = service["environment"]
        assert set(env) <= known, f"{filename} {name}: unknown settings {set(env) - known}"
        assert env["ELASTICSEARCH_URL"] == f"http://{engine_service}:9200"
        assert env.get("MMSEARCH_ENGINE") == engine
        assert engine_service in service["depends_on"]
        with monkeypatch.context() as patched:  # the values the settings can read without the shell
            patched.delenv("MMSEARCH_ENGINE", raising=False)
            for key, value in env.items():
                if "$" not in str(value):
                    patched.setenv(key, str(value))
            assert Settings().engine.kind == (engine or "auto")


def test_the_opensearch_setup_job_installs_the_dashboards_flavour() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.opensearch.yml").read_text())
    command = compose["services"]["dashboards-setup"]["command"]
    assert command[:3] == ["mmsearch", "kibana", "install"]
    assert command[command.index("--flavour") + 1] == "opensearch-dashboards"
    assert compose["services"]["opensearch"]["image"].startswith("opensearchproject/opensearch:3.")
