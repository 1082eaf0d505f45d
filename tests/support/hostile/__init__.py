"""Hostile inputs made by code (corpus.py) and the separate ingest process they run through (worker.py)."""
