"""PaymentEngine's assembly fast path equals its Solidity rules: the checks of test/fastpath, run in CI.

* forge (profile `fastpath` of foundry.toml): differential fuzzing over raw storage words
  (FastPathEquivalence.t.sol: 20,000 fuzz runs with a fixed seed + 3,000 seeded cases with statistics). For every
  case: fast path accepts => `_checkPayment` says OK and storage writes and logs equal `_executePayment`'s;
  fast path declines => no storage write, no log; it declines an allowed payment only on a stale cache.
* halmos (symbolic execution, FastPathSymbolic.t.sol): the same property for all raw words, amounts, receipt ids,
  evidence hashes and uint40 timestamps, over storage (logs: fuzzer only); plus a vacuity check that must fail.
* mutation check (test/fastpath/mutate.py): three deliberately broken fast paths (a stale cache taken as current,
  the per-payment limit off by one, the token-wide pause flag ignored), each of which the fuzzer must catch.

Needs no chain. forge comes from npm (node_modules), halmos from its own virtualenv (.venv/halmos, made by
`make setup` from test/fastpath/requirements-halmos.txt: halmos pins rich<14.1, this package rich 14.3.4).
Missing tools skip these tests on a workstation and fail them under CI (CI=true). About 3.5 minutes on 2 cores
(three via-IR compiles of the harness for the mutants included).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FASTPATH = ROOT / "test" / "fastpath"
HALMOS = ROOT / ".venv" / "halmos" / "bin" / "halmos"
MIN_ACCEPTANCE = 0.25  # the seeded cases' share the fast path must accept (the generator's bias)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _unavailable(reason: str):
    if _in_ci():
        pytest.fail(f"{reason} (CI=true: the fast-path proofs must run)", pytrace=False)
    pytest.skip(reason)


def _forge() -> str:
    # The platform binary: npm's node wrapper (node_modules/.bin/forge) exits 0 when forge fails.
    native = sorted(ROOT.glob("node_modules/@foundry-rs/forge-*/bin/forge"))
    if not native:
        _unavailable("forge is not installed (npm ci installs @foundry-rs/forge)")
    return str(native[0])


def _env(forge: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FOUNDRY_FUZZ_RUNS", None)
    env.update(FOUNDRY_PROFILE="fastpath", NO_COLOR="1")
    env["PATH"] = os.pathsep.join([str(Path(forge).parent), str(ROOT / "node_modules" / ".bin"), env.get("PATH", "")])
    return env


def _run(command: list[str], env: dict[str, str], timeout: int = 1200) -> tuple[int, str]:
    out = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    # halmos colours its output whatever NO_COLOR says
    return out.returncode, re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr)


def _tail(text: str, limit: int = 6000) -> str:
    return text if len(text) <= limit else "...\n" + text[-limit:]


def test_differential_fuzzing_fast_path_equals_solidity_path():
    forge = _forge()
    code, text = _run([forge, "test", "--match-contract", "FastPathEquivalenceTest", "-vv"], _env(forge))
    assert code == 0 and "[FAIL" not in text, _tail(text)
    fuzz = re.search(r"\[PASS\] testFuzz_fastPathEqualsCheckAndExecute\(.*?\(runs: (\d+)", text)
    assert fuzz and int(fuzz.group(1)) >= 10_000, _tail(text)
    cases = int(re.search(r"^\s*cases (\d+)$", text, re.M).group(1))
    accepted = int(re.search(r"^\s*fast path accepted \(equal effects\) (\d+)$", text, re.M).group(1))
    assert cases >= 3_000 and accepted / cases >= MIN_ACCEPTANCE, _tail(text)


def _halmos(forge: str, function: str) -> tuple[int, str]:
    if not HALMOS.exists():
        _unavailable(f"halmos is not installed at {HALMOS.relative_to(ROOT)} (make setup)")
    return _run(
        [
            str(HALMOS),
            "--forge-build-out",
            "out/fastpath",
            "--contract",
            "FastPathSymbolicTest",
            "--function",
            function,
        ],
        _env(forge),
        timeout=1800,
    )


def test_halmos_proves_fast_path_equivalent_on_storage():
    code, text = _halmos(_forge(), "check_fastPathEquivalent")
    passed = re.findall(r"\[PASS\]\s+(check_\w+)", text)
    assert code == 0 and sorted(passed) == ["check_fastPathEquivalent", "check_fastPathEquivalentNoReceipt"], _tail(
        text
    )
    assert "[FAIL]" not in text and "[ERROR]" not in text and "[TIMEOUT]" not in text, _tail(text)


def test_halmos_vacuity_check_finds_an_accepted_payment():
    """The proofs above are not vacuous: halmos finds a state the fast path accepts."""
    code, text = _halmos(_forge(), "check_vacuity_fastPathAcceptsSomething")
    assert code != 0 and re.search(r"\[FAIL\]\s+check_vacuity_fastPathAcceptsSomething", text), _tail(text)
    assert "Counterexample" in text, _tail(text)


@pytest.mark.parametrize("mutant", ["stale-cache", "limit-off-by-one", "pause-ignored"])
def test_a_broken_fast_path_is_caught(mutant):
    forge = _forge()
    code, text = _run([sys.executable, str(FASTPATH / "mutate.py"), mutant], _env(forge), timeout=1800)
    assert code == 0 and f"KILLED  {mutant}" in text, _tail(text)
