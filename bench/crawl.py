"""Incremental crawl vs sending the folder again: files sent and seconds per pass, side by side.

Against the running API (`mmsearch up`): a folder of SciFact abstracts as .txt files is crawled once (all
new), again with nothing changed, again after a tenth of the files were edited, and then sent whole by
`mmsearch ingest DIR` (what re-running it costs: every file read, hashed and posted).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

from rich.console import Console

from bench.common import Report, corpus_docs, save, show
from client.api import ApiClient
from client.crawl import crawl, summary
from client.upload import upload_files
from ingest.crawl import iter_files


def _timed_crawl(client: ApiClient, root: Path, collection: str, label: str) -> dict:
    start = time.perf_counter()
    counts = summary(crawl(client, root, collection))
    seconds = time.perf_counter() - start
    sent = counts["added"] + counts["changed"]
    return {"pass": label, "files sent": sent, "unchanged": counts["unchanged"], "seconds": seconds}


def run(client: ApiClient, dataset: Path, n: int) -> Report:
    collection = f"bench-crawl-{uuid.uuid4().hex[:8]}"
    client.create_collection(collection)
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            for i, doc in enumerate(corpus_docs(dataset, n)):
                (root / f"{i // 100:03d}").mkdir(exist_ok=True)
                (root / f"{i // 100:03d}" / f"{doc['id']}.txt").write_text(
                    f"{doc['title'] or ''}\n\n{doc['text']}"
                )
            rows.append(_timed_crawl(client, root, collection, "crawl: first (all new)"))
            rows.append(_timed_crawl(client, root, collection, "crawl: nothing changed"))
            files = list(iter_files(root))
            for path in files[:: max(1, len(files) // max(1, n // 10))][: max(1, n // 10)]:
                path.write_text(path.read_text() + "\n\nedited")
            rows.append(_timed_crawl(client, root, collection, "crawl: a tenth edited"))
            other = f"{collection}-ingest"
            client.create_collection(other)
            try:
                start = time.perf_counter()
                upload_files(client, files, other)  # the first ingest: every file
                rows.append(
                    {
                        "pass": "ingest DIR (first)",
                        "files sent": len(files),
                        "unchanged": 0,
                        "seconds": time.perf_counter() - start,
                    }
                )
                start = time.perf_counter()
                totals = upload_files(client, files, other)  # ... and re-running it
                rows.append(
                    {
                        "pass": "ingest DIR again",
                        "files sent": len(files),
                        "unchanged": totals["duplicates"],
                        "seconds": time.perf_counter() - start,
                    }
                )
            finally:
                client.delete_collection(other)
    finally:
        client.delete_collection(collection)
    base = rows[-1]["seconds"]
    for row in rows:
        row["vs ingest again"] = row["seconds"] / base if base else 0.0
    notes = [
        f"{n} SciFact abstracts as .txt files; the API and a worker share this machine's CPUs",
        "'ingest DIR again' answers unchanged files 'duplicate' but still reads and posts every one (none "
        "changed); an edited file would become a second document, where the crawl replaces it under its id",
        "a crawl pass that sends files also pays a refresh of the mmsearch indices per batch (blob release)",
    ]
    return Report("crawl", f"Incremental crawl vs ingest again ({n} files)", rows, notes)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path, required=True, help="a BEIR folder (corpus.jsonl[.gz])")
    parser.add_argument("--files", type=int, default=300)
    args = parser.parse_args()
    report = run(ApiClient.from_settings(), args.dataset, args.files)
    show(report, Console(width=None if sys.stdout.isatty() else 160))
    print(f"wrote {save(report)}")


if __name__ == "__main__":
    main()
