"""Raw input -> index documents: validation, extraction, blob store, bulk writes, crawling."""
