"""The service: the query path (plan, fusion, explanation) and the Flask app that serves it."""
