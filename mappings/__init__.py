"""Index mappings as JSON, rendered with the dims of the collection's encoders."""

from mappings.render import index_body, source_properties

__all__ = ["index_body", "source_properties"]
