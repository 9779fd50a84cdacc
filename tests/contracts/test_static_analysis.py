"""Static analysis: Slither on the project's contracts must report no High or Medium finding.

Slither compiles through forge (foundry.toml: solc is the solc-js shim toolchain/bin/solc, so no compiler is
downloaded; via-IR, optimizer 200 runs, paris, OpenZeppelin from node_modules). contracts/test is skipped,
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
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deposit_token.paths import ROOT

FAILING_IMPACTS = ("High", "Medium")
TIMEOUT_SECONDS = 1200


@dataclass
class SlitherRun:
    command: list[str]
    seconds: float = 0.0
    report: dict | None = None
    error: str | None = None
    skip_reason: str | None = None
    detectors: list[dict] = field(default_factory=list)
    build_info: dict | None = None


def _environment(build_dir: Path) -> dict[str, str]:
    """PATH with this checkout's forge (npm @foundry-rs/forge) and the interpreter's scripts first; forge's
    output and cache in `build_dir`, so that the analysis never reads an earlier build's artifacts (crytic-compile
    goes on to parse whatever build-info it finds when `forge build` fails) and leaves nothing in the tree."""
    env = dict(os.environ)
    prefix = [str(ROOT / "node_modules" / ".bin"), str(Path(sys.executable).parent)]
    env["PATH"] = os.pathsep.join([*prefix, env.get("PATH", "")])
    env["FOUNDRY_OUT"] = str(build_dir / "out")
    env["FOUNDRY_CACHE_PATH"] = str(build_dir / "cache")
    env.setdefault("NO_COLOR", "1")
    return env


def _find_forge(env: dict[str, str]) -> tuple[str | None, str | None]:
    """(forge's path, None), or (None, why forge cannot run on this machine). The platform binary of npm
    @foundry-rs/forge is preferred: the package's node wrapper (node_modules/.bin/forge) exits 0 when forge fails."""
    native = sorted(ROOT.glob("node_modules/@foundry-rs/forge-*/bin/forge"))
    forge = str(native[0]) if native else shutil.which("forge", path=env["PATH"])
    if forge is None:
        return None, "forge is not installed (npm ci installs @foundry-rs/forge into node_modules/.bin)"
    try:
        out = subprocess.run([forge, "--version"], capture_output=True, text=True, timeout=120, env=env)
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"forge ({forge}) cannot be executed on this machine: {exc}"
    if out.returncode != 0:
        return None, f"forge ({forge}) cannot be executed on this machine: {_tail(out.stderr or out.stdout, 500)}"
    return forge, None


def _tail(text: str, limit: int = 4000) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else "...\n" + text[-limit:]


@pytest.fixture(scope="module")
def slither_run():
    with tempfile.TemporaryDirectory(prefix="slither-forge-") as build_dir:
        yield _run_slither(Path(build_dir))


def _run(command: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess | None, str | None]:
    """Runs `command` in the repository; (process, None) or (None, why it could not run)."""
    try:
        proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired as exc:
        return None, f"`{' '.join(command)}` did not finish within {TIMEOUT_SECONDS} s\n{_tail(str(exc.stderr or ''))}"
    except OSError as exc:
        return None, f"`{' '.join(command)}` could not be started: {exc}"
    return proc, None


def _run_slither(build_dir: Path) -> SlitherRun:
    env = _environment(build_dir)
    # forge compiles first, on its own, so that a failed build is reported as such (crytic-compile would log
    # it and go on); slither then analyses exactly that build.
    forge_path, skip_reason = _find_forge(env)
    forge = [forge_path or "forge", "build", "--build-info", "--deny", "never"]
    command = [
        sys.executable, "-m", "slither", ".",
        "--compile-force-framework", "foundry",
        "--foundry-ignore-compile", "--foundry-out-directory", str(build_dir / "out"),
        "--exclude-optimization", "--exclude-informational", "--exclude-low",
        "--disable-color",
        "--json", "-",
    ]  # fmt: skip
    run = SlitherRun(command=command, skip_reason=skip_reason)
    if run.skip_reason:
        return run
    started = time.monotonic()
    built, run.error = _run(forge, env)
    if run.error:
        return run
    if built.returncode != 0:
        run.error = (
            f"`{' '.join(forge)}` (foundry.toml) failed with exit {built.returncode}:\n"
            f"{_tail(built.stderr)}\n{_tail(built.stdout)}"
        )
        return run
    infos = sorted((build_dir / "out" / "build-info").glob("*.json"))
    if len(infos) != 1:
        run.error = (
            f"expected one build-info from `{' '.join(forge)}`, found {len(infos)}:\n"
            f"{_tail(built.stderr)}\n{_tail(built.stdout)}"
        )
        return run
    run.build_info = json.loads(infos[0].read_text())
    proc, run.error = _run(command, env)
    run.seconds = time.monotonic() - started
    if run.error:
        return run
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
    return f"- [{finding['impact']}/{finding['confidence']}] {finding['check']} at {where}\n      {description}"


def _require_report(run: SlitherRun) -> None:
    if run.skip_reason:
        pytest.skip(run.skip_reason)
    if run.error:
        pytest.fail(f"slither could not analyse the contracts ({' '.join(run.command)}):\n{run.error}")


def test_slither_analysed_the_project_contracts_as_ape_builds_them(slither_run):
    _require_report(slither_run)
    # What forge compiled for slither (a wrong `src` would analyse nothing and so find nothing), and with
    # ape-config.yaml's settings: solc 0.8.30, via-IR, optimizer 200 runs, paris.
    build = slither_run.build_info
    settings = build["input"]["settings"]
    assert build["solcVersion"] == "0.8.30"
    assert settings["viaIR"] is True
    assert settings["optimizer"] == {"enabled": True, "runs": 200}
    assert settings["evmVersion"] == "paris"
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
