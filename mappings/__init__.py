"""Index mappings as JSON, rendered with the dims of the collection's encoders."""

from mappings.render import added_properties, index_body, source_properties

__all__ = ["added_properties", "index_body", "source_properties"]
