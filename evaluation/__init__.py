"""Quality tools over the HTTP API: metrics and runs on judgments, fusion tuning, the fine-tuning recipe."""
