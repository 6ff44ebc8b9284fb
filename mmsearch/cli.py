"""`mmsearch`: the one entry point. Every command lives in a command module and is registered here.

The command modules share `mmsearch.common` and never import this module.
"""

from __future__ import annotations

import click

from mmsearch import (
    commands_data,
    commands_demo,
    commands_keys,
    commands_kibana,
    commands_models,
    commands_optimize,
    commands_quality,
    commands_recipe,
    commands_snapshot,
    commands_stack,
)

COMMANDS: list[click.Command] = [
    # the services
    commands_stack.up,
    commands_stack.down,
    commands_stack.status,
    commands_stack.worker,
    commands_stack.serve,
    commands_stack.migrate,
    commands_keys.keys,
    # collections and their documents
    commands_data.collections,
    commands_snapshot.snapshot,
    commands_optimize.optimize,
    commands_data.ingest,
    commands_data.crawl,
    commands_data.search,
    commands_demo.demo,
    # retrieval quality and models
    commands_quality.evaluate,
    commands_quality.tune,
    commands_quality.bench,
    commands_models.train,
    commands_models.reencode,
    commands_recipe.improve,
    commands_recipe.rerank,
    # inspection
    commands_kibana.kibana_group,
]


@click.group()
def main() -> None:
    """Multimodal hybrid search on Elasticsearch."""


for command in COMMANDS:
    main.add_command(command)

if __name__ == "__main__":
    main()
