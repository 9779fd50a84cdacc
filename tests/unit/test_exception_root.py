"""Every exception class the package defines derives from ``DepositTokenError``, so one ``except`` in the CLI
turns any of them into its sentence (and a new one cannot be forgotten: this test imports every module)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import deposit_token
from deposit_token.errors import DepositTokenError


def project_exceptions() -> list[type[BaseException]]:
    found: list[type[BaseException]] = []
    for info in pkgutil.walk_packages(deposit_token.__path__, "deposit_token."):
        if info.name.endswith(".__main__") or ".migrations" in info.name:
            continue  # entry points run things when imported; migrations are alembic scripts
        module = importlib.import_module(info.name)
        found += [
            value
            for value in vars(module).values()
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__
        ]
    return found


def test_the_package_defines_exceptions():
    assert len(project_exceptions()) > 20  # the walk found the modules (a broken walk would pass vacuously)


@pytest.mark.parametrize("cls", project_exceptions(), ids=lambda cls: f"{cls.__module__}.{cls.__qualname__}")
def test_every_exception_derives_from_the_root(cls: type[BaseException]):
    assert issubclass(cls, DepositTokenError), f"{cls.__qualname__} should derive from DepositTokenError"


def test_input_errors_are_still_value_errors():
    """Families keep their built-in base, so code catching ValueError still catches bad input."""
    from deposit_token.domain.inputs import InputError

    assert issubclass(InputError, ValueError)
