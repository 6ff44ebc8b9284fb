"""Index mappings as JSON, rendered with the dims of the collection's encoders."""

from mappings.render import index_body

__all__ = ["index_body"]
