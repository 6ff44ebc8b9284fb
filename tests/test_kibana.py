"""Kibana / OpenSearch Dashboards saved objects: every field they use fits the mapping, and the install
command's request, seen by a real HTTP server standing in for Kibana's saved-objects API."""

from __future__ import annotations

import copy
import email.parser
import email.policy
import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from click.testing import CliRunner

from client import kibana
from core.config import Settings
from core.engine import ELASTICSEARCH, OPENSEARCH
from core.es import engine_of
from ingest import lifecycle
from mappings import catalog, index_body
from mappings.kibana import (
    OPENSEARCH_DASHBOARDS,
    Options,
    check_fields,
    referenced_fields,
    saved_objects,
)
from mmsearch.cli import main

ENCODERS = ["text", "phash", "mfcc"]


def _template_mapping() -> dict[str, Any]:
    return index_body("t", [], Settings(), ELASTICSEARCH)["mappings"]


def test_objects_fit_the_rendered_mapping_and_reference_each_other() -> None:
    objects = saved_objects(Options("mmsearch-a,mmsearch-b", pending_minutes=30))
    assert check_fields(objects, _template_mapping()) == []
    ids = {o["id"] for o in objects}
    assert {r["id"] for o in objects for r in o["references"]} <= ids
    by_id = {o["id"]: o for o in objects}
    assert by_id["mmsearch-collections"]["attributes"]["title"] == "mmsearch-a,mmsearch-b"
    stale = json.loads(
        by_id["mmsearch-pending-stale"]["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
    )
    assert "now-30m" in stale["query"]["query"]
    uses = {(u.field, u.usage) for u in referenced_fields(objects)}
    assert {
        ("@timestamp", "date_histogram"),
        ("ingest.error.keyword", "terms"),
        ("ingest.encoders", "terms"),
    } <= uses
    assert ("ingest.queued_at", "range") in uses


def test_a_drifted_mapping_is_reported_field_by_field() -> None:
    mapping = copy.deepcopy(_template_mapping())
    props = mapping["properties"]
    props["modality"] = {"type": "text"}  # terms over analysed text
    del props["ingest"]["properties"]["error"]["fields"]  # no keyword sub-field for the reasons table
    props["@timestamp"] = {"type": "keyword"}
    problems = check_fields(saved_objects(Options("x")), mapping)
    text = "\n".join(problems)
    assert "mmsearch-by-modality: modality is text, terms cannot use it" in text
    assert "mmsearch-failure-reasons: ingest.error.keyword is not in the mapping" in text
    assert "mmsearch-collections: @timestamp is keyword, time cannot use it" in text


def test_on_opensearch_encoder_versions_are_counted_by_queries_not_terms() -> None:
    mapping = index_body("t", [], Settings(), OPENSEARCH)["mappings"]
    assert mapping["properties"]["ingest"]["properties"]["encoders"]["type"] == "flat_object"
    # the Elasticsearch objects' terms over `ingest.encoders` are refused against this mapping
    problems = check_fields(saved_objects(Options("x")), mapping)
    assert problems == ["mmsearch-encoder-versions: ingest.encoders is flat_object, terms cannot use it"]
    versions = (("phash", "phash"), ("text", "text@all-MiniLM-L6-v2"), ("text", 'text@/m/"q"'))
    objects = saved_objects(Options("x", engine="opensearch", encoder_versions=versions))
    assert check_fields(objects, mapping) == []
    chart = next(o for o in objects if o["id"] == "mmsearch-encoder-versions")
    (agg,) = [a for a in json.loads(chart["attributes"]["visState"])["aggs"] if a["type"] == "filters"]
    queries = {f["label"]: f["input"]["query"] for f in agg["params"]["filters"]}
    assert queries["text@all-MiniLM-L6-v2"] == 'ingest.encoders.text:"text@all-MiniLM-L6-v2"'
    assert queries['text@/m/"q"'] == 'ingest.encoders.text:"text@/m/\\"q\\""'
    assert queries["text: other versions"] == (
        'ingest.encoders.text:* AND NOT ingest.encoders.text:("text@all-MiniLM-L6-v2" OR "text@/m/\\"q\\"")'
    )
    assert ("ingest.encoders.text", "query") in {(u.field, u.usage) for u in referenced_fields(objects)}
    # a key of a flat_object cannot be aggregated either (OpenSearch answers no buckets)
    mapping["properties"]["modality"] = {"type": "flat_object"}
    assert "mmsearch-by-modality: modality is flat_object, terms cannot use it" in check_fields(
        objects, mapping
    )


def test_opensearch_dashboards_flavour_carries_7_10_migration_stamps() -> None:
    for obj in saved_objects(Options("x", flavour=OPENSEARCH_DASHBOARDS)):
        assert "typeMigrationVersion" not in obj
        assert obj["migrationVersion"][obj["type"]].startswith("7.")


# ---- integration: a real multi-encoder collection on the running Elasticsearch ----------------------


@pytest.fixture(scope="module")
def multi_encoder(es, settings: Settings) -> Iterator[str]:  # noqa: ANN001
    name = f"t-kibana-{uuid.uuid4().hex[:8]}"
    catalog.create(es, settings, name, ENCODERS)
    yield name
    catalog.delete(es, settings, name)


def _aggregation(agg: dict[str, Any]) -> dict[str, Any]:
    """A chart's aggregation as Kibana / Dashboards send it (filters: Lucene input as `query_string`)."""
    if agg["type"] == "filters":
        buckets = agg["params"]["filters"]
        return {
            "filters": {
                "filters": {
                    b["label"]: {"query_string": {"query": b["input"]["query"], "analyze_wildcard": True}}
                    for b in buckets
                }
            }
        }
    spec = {"field": agg["params"]["field"]}
    spec |= {"calendar_interval": "1h"} if agg["type"] == "date_histogram" else {"size": 5}
    return {agg["type"]: spec}


@pytest.mark.integration
def test_objects_fit_a_live_multi_encoder_collection(es, settings: Settings, multi_encoder: str) -> None:  # noqa: ANN001
    rendered = kibana.render(es, settings, [multi_encoder])
    coll = catalog.get(es, settings, multi_encoder)
    mapping = es.indices.get_mapping(index=coll.index)[coll.index]["mappings"]
    assert set(mapping["properties"]["vectors"]["properties"]) == set(ENCODERS)
    assert rendered.problems == []
    assert rendered.objects[0]["attributes"]["title"] == coll.alias
    for use in referenced_fields(rendered.objects):  # printed for the closing note (pytest -s)
        print(f"{use.object_id:28} {use.usage:15} {use.field}")
    # two documents as the worker stamps them: one of the collection's text model, one of another
    text = coll.encoders["text"]["version"]
    for doc_id, version in (("now", text), ("old", "text@an-older-model")):
        stamp = lifecycle.encoded(1, {"text": version, "phash": coll.encoders["phash"]["version"]})
        doc = {"doc_id": doc_id, "collection": multi_encoder, "modality": "text", "ingest": stamp}
        es.index(
            index=coll.alias, id=doc_id, document=doc | {"@timestamp": stamp["encoded_at"]}, refresh=True
        )
    # every chart's aggregations run on the live index as they are, and count what is there
    counted: dict[str, Any] = {}
    for obj in rendered.objects:
        if obj["type"] != "visualization":
            continue
        aggs = json.loads(obj["attributes"]["visState"])["aggs"]
        body: dict[str, Any] = {}
        for agg in reversed([a for a in aggs if a["type"] != "count"]):
            body = {agg["id"]: _aggregation(agg) | ({"aggs": body} if body else {})}
        counted[obj["id"]] = es.search(index=coll.alias, size=0, aggs=body)["aggregations"]
    buckets = counted["mmsearch-encoder-versions"]["2"]["buckets"]
    if engine_of(es).is_opensearch:  # filters: one bucket per known version, then the others
        assert buckets[text]["doc_count"] == 1 and buckets["text: other versions"]["doc_count"] == 1
        assert buckets[coll.encoders["phash"]["version"]]["doc_count"] == 2
    else:  # terms over the flattened field: every value
        found = {b["key"]: b["doc_count"] for b in buckets}
        assert found[text] == 1 and found["text@an-older-model"] == 1


class _Recorder(BaseHTTPRequestHandler):
    """Kibana's `_import` as far as the client sees it: records each request, answers `answer`."""

    seen: list[dict[str, Any]] = []
    answer: tuple[int, dict[str, Any]] = (200, {"success": True, "successCount": 0})

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append({"path": self.path, "headers": dict(self.headers), "body": body})
        status, answer = self.answer
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_kibana() -> Iterator[str]:
    _Recorder.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _ndjson_part(request: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The multipart body's `file` part: its filename and the objects in it."""
    raw = f"Content-Type: {request['headers']['Content-Type']}\r\n\r\n".encode() + request["body"]
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    (part,) = list(message.iter_parts())
    assert part.get_param("name", header="content-disposition") == "file"
    lines = part.get_payload(decode=True).decode().splitlines()
    return part.get_filename(), [json.loads(line) for line in lines]


@pytest.mark.integration
def test_install_command_imports_into_a_space(fake_kibana: str, multi_encoder: str) -> None:
    _Recorder.answer = (200, {"success": True, "successCount": 13})
    args = ["kibana", "install", "--url", fake_kibana, "--space", "ops", "--collection", multi_encoder]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["imported"] == 13
    (request,) = _Recorder.seen
    assert request["path"] == "/s/ops/api/saved_objects/_import?overwrite=true"
    assert request["headers"]["kbn-xsrf"] == "true"
    filename, objects = _ndjson_part(request)
    assert filename.endswith(".ndjson")
    assert [o["type"] for o in objects][0] == "index-pattern" and objects[-1]["type"] == "dashboard"
    assert objects[0]["attributes"]["title"].endswith(multi_encoder)


def test_install_to_dashboards_and_a_refusal(fake_kibana: str) -> None:
    objects = saved_objects(Options("mmsearch-*", flavour=OPENSEARCH_DASHBOARDS))
    kibana.install(fake_kibana, objects, OPENSEARCH_DASHBOARDS)
    assert _Recorder.seen[-1]["path"] == "/api/saved_objects/_import?overwrite=true"
    assert _Recorder.seen[-1]["headers"]["osd-xsrf"] == "true"
    assert "kbn-xsrf" not in _Recorder.seen[-1]["headers"]
    _Recorder.answer = (
        200,
        {"success": False, "errors": [{"id": "mmsearch-ingest", "error": {"type": "conflict"}}]},
    )
    with pytest.raises(kibana.KibanaError, match="conflict"):
        kibana.install(fake_kibana, objects)
    with pytest.raises(kibana.KibanaError, match="spaces"):
        kibana.install(fake_kibana, objects, OPENSEARCH_DASHBOARDS, space="ops")
