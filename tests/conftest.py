"""Shared test set-up.

Having this file here puts `tests/` on sys.path (pytest's default import mode), so
test modules in every tier import the shared builders with `from factories import ...`.
"""
