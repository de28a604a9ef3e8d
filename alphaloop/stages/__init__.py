"""Stages: each one moves experience between the five nouns (collect -> score -> learn -> eval)."""
