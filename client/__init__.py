"""Outside the service: the HTTP client and uploads of files and folders through it."""
