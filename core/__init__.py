"""The floor: settings, the Elasticsearch client factory, the error base. Imports nothing of the project."""
