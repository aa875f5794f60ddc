"""Enrichment: language, embeddings, topic relevance, facts and story clustering of new articles."""
