"""Outside the service: the HTTP client, uploads of files through it, and the embedded stack's processes."""
