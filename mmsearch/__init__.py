"""Shared plumbing: settings, the Elasticsearch client factory, the CLI and the embedded stack."""

__version__ = "0.1.0"
