"""PostgreSQL for the tests: which server to use and what to do when there is none."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

PG_URL_ENVS = ("DEPOSIT_TOKEN_TEST_PG_URL", "AUDIT_TEST_PG_URL")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def postgres_unusable(reason: str) -> NoReturn:
    """Skip the test with `reason`, or fail it under CI, where every PostgreSQL test must run."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: PostgreSQL tests fail rather than skip)", pytrace=False)
    pytest.skip(reason)
