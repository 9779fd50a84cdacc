"""Static analysis: Slither on the project's contracts must report no High or Medium finding.

Slither compiles through forge (foundry.toml: solc is the solc-js shim toolchain/bin/solc, so no compiler is
downloaded; via-IR, optimizer 1000 runs, cancun, OpenZeppelin from node_modules). contracts/test is skipped,
and findings located only in dependencies (node_modules: OpenZeppelin) are not the project's to fix.

A false positive is silenced at its place in the contract with `// slither-disable-next-line <check>` on the
line above, with a comment saying why. `tools/slither.sh` runs the same analysis by hand (every impact).

Needs no chain: it runs slither in a subprocess once per module. If forge cannot run on this machine the test
is skipped; any other reason slither cannot analyse the contracts is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAILING_IMPACTS = ("High", "Medium")
SLITHER_TIMEOUT_SECONDS = 1200


@dataclass
class SlitherRun:
    command: list[str]
    seconds: float = 0.0
    report: dict | None = None
    error: str | None = None
    skip_reason: str | None = None
    detectors: list[dict] = field(default_factory=list)


def _environment() -> dict[str, str]:
    """PATH with this checkout's forge (npm @foundry-rs/forge) and the interpreter's scripts first."""
    env = dict(os.environ)
    prefix = [str(ROOT / "node_modules" / ".bin"), str(Path(sys.executable).parent)]
    env["PATH"] = os.pathsep.join(prefix + [env.get("PATH", "")])
    env.setdefault("NO_COLOR", "1")
    return env


def _forge_problem(env: dict[str, str]) -> str | None:
    """Why forge cannot run here, or None if it can."""
    forge = shutil.which("forge", path=env["PATH"])
    if forge is None:
        return "forge is not installed (npm ci installs @foundry-rs/forge into node_modules/.bin)"
    try:
        out = subprocess.run([forge, "--version"], capture_output=True, text=True, timeout=120, env=env)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"forge ({forge}) cannot be executed on this machine: {exc}"
    if out.returncode != 0:
        return f"forge ({forge}) cannot be executed on this machine: {(out.stderr or out.stdout).strip()[-500:]}"
    return None


def _tail(text: str, limit: int = 4000) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else "...\n" + text[-limit:]


@pytest.fixture(scope="module")
def slither_run() -> SlitherRun:
    env = _environment()
    command = [
        sys.executable, "-m", "slither", ".",
        "--compile-force-framework", "foundry",
        "--exclude-optimization", "--exclude-informational", "--exclude-low",
        "--disable-color",
        "--json", "-",
    ]  # fmt: skip
    run = SlitherRun(command=command)
    run.skip_reason = _forge_problem(env)
    if run.skip_reason:
        return run
    started = time.monotonic()
    try:
        proc = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=SLITHER_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired as exc:
        run.error = f"slither did not finish within {SLITHER_TIMEOUT_SECONDS} s\n{_tail(str(exc.stderr or ''))}"
        return run
    except OSError as exc:
        run.error = f"slither could not be started: {exc}"
        return run
    finally:
        run.seconds = time.monotonic() - started
    try:
        run.report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        run.error = (
            f"slither (exit {proc.returncode}) printed no JSON report.\n"
            f"stdout:\n{_tail(proc.stdout)}\nstderr:\n{_tail(proc.stderr)}"
        )
        return run
    if not run.report.get("success"):
        run.error = f"slither failed: {run.report.get('error')}\nstderr:\n{_tail(proc.stderr)}"
        return run
    run.detectors = (run.report.get("results") or {}).get("detectors") or []
    return run


def _project_element(element: dict) -> bool:
    """Whether a finding's element lies in the project's contracts (not a dependency, not contracts/test)."""
    mapping = element.get("source_mapping") or {}
    path = (mapping.get("filename_relative") or "").replace("\\", "/")
    if mapping.get("is_dependency") or "node_modules/" in path:
        return False
    return path.startswith("contracts/") and not path.startswith("contracts/test/")


def _location(element: dict) -> str:
    mapping = element["source_mapping"]
    lines = mapping.get("lines") or [0]
    return f"{mapping['filename_relative']}:{lines[0]}"


def _project_findings(detectors: list[dict]) -> list[dict]:
    return [
        finding
        for finding in detectors
        if finding.get("impact") in FAILING_IMPACTS
        and any(_project_element(element) for element in finding.get("elements", []))
    ]


def _describe(finding: dict) -> str:
    elements = [element for element in finding["elements"] if _project_element(element)]
    # The statement (node) is the precise place; the enclosing function or variable otherwise.
    nodes = [element for element in elements if element.get("type") == "node"]
    where = _location((nodes or elements)[0])
    description = finding["description"].strip().replace("\n", "\n      ")
    return (
        f"- [{finding['impact']}/{finding['confidence']}] {finding['check']} at {where}\n"
        f"      {description}"
    )


def _require_report(run: SlitherRun) -> None:
    if run.skip_reason:
        pytest.skip(run.skip_reason)
    if run.error:
        pytest.fail(f"slither could not analyse the contracts ({' '.join(run.command)}):\n{run.error}")


def test_slither_analysed_the_project_contracts_as_ape_builds_them(slither_run):
    _require_report(slither_run)
    # What forge compiled for slither (a wrong `src` would analyse nothing and so find nothing), and with
    # ape-config.yaml's settings: solc 0.8.30, via-IR, optimizer 1000 runs, cancun.
    infos = sorted((ROOT / "out" / "build-info").glob("*.json"), key=lambda p: p.stat().st_mtime)
    assert infos, "forge wrote no build-info under out/build-info"
    build = json.loads(infos[-1].read_text())
    settings = build["input"]["settings"]
    assert build["solcVersion"] == "0.8.30"
    assert settings["viaIR"] is True
    assert settings["optimizer"] == {"enabled": True, "runs": 1000}
    assert settings["evmVersion"] == "cancun"
    compiled = {path for path in build["input"]["sources"] if path.startswith("contracts/")}
    expected = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "contracts").rglob("*.sol")
        if path.relative_to(ROOT / "contracts").parts[0] in ("token", "libraries", "interfaces")
    }
    assert expected <= compiled, f"not analysed: {sorted(expected - compiled)}"
    assert not any(path.startswith("contracts/test/") for path in compiled), "contracts/test should be skipped"


def test_no_high_or_medium_findings_in_project_contracts(slither_run):
    _require_report(slither_run)
    findings = sorted(
        _project_findings(slither_run.detectors),
        key=lambda f: (FAILING_IMPACTS.index(f["impact"]), f["check"], f["description"]),
    )
    if findings:
        listing = "\n".join(_describe(finding) for finding in findings)
        pytest.fail(
            f"slither found {len(findings)} High/Medium finding(s) in contracts/ "
            f"(run took {slither_run.seconds:.0f} s). Fix each, or, for a false positive, put "
            f"`// slither-disable-next-line <check>` with the reason on the line above it:\n{listing}",
            pytrace=False,
        )
