"""The relevance cut-off through the real API: a profile's learned rule applied (`total` counts what
passed, pages run over the cut set), `cutoff: false` restores every hit, the default for text queries."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from client.api import ApiClient, ApiClientError
from search.cutoff import DEFAULTS

pytestmark = pytest.mark.integration

TOPICS = {
    "reef1": ("Coral bleaching", "Coral reefs bleach when warm seas drive out the algae living in them."),
    "reef2": ("Reefs and heat", "Marine heatwaves kill coral reefs across the tropics."),
    "reef3": ("Ocean warming", "Warming oceans harm corals, kelp and fish stocks."),
    "bank": ("Interest rates", "The central bank raised interest rates to curb inflation."),
    "bread": ("Sourdough", "Sourdough bread rises slowly thanks to wild yeast in the starter."),
    "mars": ("Mars rover", "The rover drilled into Martian rock looking for ancient microbes."),
    "run": ("Marathon", "Runners trained for months to finish the marathon in three hours."),
    "chess": ("Chess openings", "The Sicilian defence is a sharp reply to the king's pawn."),
    "jazz": ("Bebop", "Bebop musicians played fast tempos with complex chord changes."),
    "tax": ("Tax forms", "File the annual tax return before the April deadline."),
    "owl": ("Owls", "Owls hunt at night, locating mice by sound alone."),
    "glass": ("Glassblowing", "Molten glass is shaped on the end of a long metal pipe."),
}
QUERY = "coral reefs bleaching in warm seas"


def ids(result: dict) -> list[str]:
    return [hit["id"] for hit in result["hits"]]


@pytest.fixture(scope="module")
def topics(api: ApiClient, worker) -> Iterator[str]:
    worker.ensure_running()
    name = f"t-cutoff-{uuid.uuid4().hex[:8]}"
    api.create_collection(name)
    docs = [{"id": key, "title": title, "text": text} for key, (title, text) in TOPICS.items()]
    api.add_documents(name, docs, refresh=True)
    api.wait_encoded(name, timeout=300)
    yield name
    api.delete_collection(name)


def test_a_tuned_profiles_cut_is_applied_and_cutoff_false_restores_everything(
    api: ApiClient, topics: str
) -> None:
    lexical_all = api.search(topics, QUERY, mode="lexical", size=100, cutoff=False)
    assert lexical_all["cutoff"] == {"applied": False, "reason": "the request set cutoff: false"}
    assert lexical_all["total"] >= 3 and set(ids(lexical_all)[:2]) <= {"reef1", "reef2", "reef3"}
    profile = {"cutoff": {"lexical": {"rule": "top_k", "value": 2}, "hybrid": {"rule": "top_k", "value": 3}}}
    api.request("PUT", f"/v1/collections/{topics}/profiles/cut", json=profile)

    cut = api.search(topics, QUERY, mode="lexical", profile="cut", size=100)
    assert cut["total"] == 2 and ids(cut) == ids(lexical_all)[:2]
    assert cut["cutoff"]["applied"] is True and cut["cutoff"]["source"] == "profile"
    assert cut["cutoff"]["rule"] == {"rule": "top_k", "value": 2.0}
    assert cut["cutoff"]["cut"] == lexical_all["total"] - 2
    # pages run over the cut set
    assert (
        ids(api.search(topics, QUERY, mode="lexical", profile="cut", size=1, **{"from": 1})) == ids(cut)[1:]
    )
    beyond = api.search(topics, QUERY, mode="lexical", profile="cut", size=5, **{"from": 2})
    assert beyond["hits"] == [] and beyond["total"] == 2

    hybrid_all = api.search(topics, QUERY, profile="cut", size=100, cutoff=False)
    assert hybrid_all["total"] == len(TOPICS)  # a kNN finds every document, however far
    hybrid = api.search(topics, QUERY, profile="cut", size=100)
    assert 1 <= hybrid["total"] <= 3 and hybrid["total"] == len(hybrid["hits"])
    assert set(ids(hybrid)) <= set(ids(hybrid_all)[:3])  # the top 3, less any without merit
    assert hybrid["cutoff"]["merit"]["lexical"] == {"rule": "top_k", "value": 2.0}
    assert hybrid["cutoff"]["merit"]["vector:text"] == DEFAULTS["vector"].model_dump()


def test_text_queries_get_the_default_cut_and_searches_by_document_none(api: ApiClient, topics: str) -> None:
    result = api.search(topics, QUERY, size=100, explain=True)
    assert result["cutoff"]["applied"] is True and result["cutoff"]["source"] == "default"
    assert result["cutoff"]["rule"] == DEFAULTS["hybrid"].model_dump()
    assert 1 <= result["total"] < len(TOPICS) and ids(result)[0].startswith("reef")
    assert {"bank", "bread", "chess", "jazz"}.isdisjoint(ids(result))
    like = api.search(topics, None, like="reef1", size=100)
    assert like["cutoff"]["applied"] is False and like["total"] == len(TOPICS) - 1  # all but itself


def test_bad_cutoffs_are_refused(api: ApiClient, topics: str) -> None:
    with pytest.raises(ApiClientError) as err:
        api.search(topics, QUERY, cutoff="maybe")
    assert err.value.status == 400
    with pytest.raises(ApiClientError) as err:
        api.request(
            "PUT",
            f"/v1/collections/{topics}/profiles/bad",
            json={"cutoff": {"hybrid": {"rule": "ratio", "value": 2}}},
        )
    assert err.value.status == 400 and "ratio" in str(err.value)
