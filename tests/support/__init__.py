"""Helpers shared by the test modules (never fixtures: those are in the conftest.py files). Importable as
``support`` because tests/ is on sys.path (tests/conftest.py's folder)."""
