"""Collectors: poll RSS/Atom feeds and store their items as articles (the first stage of the pipeline)."""
