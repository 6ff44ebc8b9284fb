"""Celery app and tasks: encode batches of documents and write vectors back."""
