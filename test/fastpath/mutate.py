"""Mutation check of the fast-path equivalence tests: break PaymentEngine's assembly fast path on purpose, in a
throwaway copy of the contracts, and show that the checks of test/fastpath fail.

    python test/fastpath/mutate.py                 # every mutant, fuzzer only
    python test/fastpath/mutate.py --halmos        # ... and halmos as well
    python test/fastpath/mutate.py stale-cache     # one mutant by name

Each mutant is one textual edit inside `_tryFastPayment` of contracts/token/PaymentEngine.sol; the copy (the
contracts, test/fastpath and foundry.toml, with node_modules and toolchain linked) lives in a temporary folder,
so the work tree is never touched. A mutant is "killed" when forge test fails with one of the property labels
(A-E, see FastPathEquivalence.t.sol) - not with a compile error - and, with --halmos, when halmos finds a
counterexample. If an edit no longer applies (the fast path was rewritten), the mutant is reported as stale and
the run fails: update MUTANTS. Exit status 0 only if every mutant selected was killed.
Uses only the standard library; tests/contracts/test_fast_path_equivalence.py imports it.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINE = Path("contracts/token/PaymentEngine.sol")
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # halmos colours its output whatever NO_COLOR says
PROPERTY_FAILURE = re.compile(r"\[FAIL: ([A-E]: [^\]]*?)(?:;|\])")


@dataclass(frozen=True)
class Mutant:
    name: str
    what: str
    pattern: str  # regex, matched inside the body of _tryFastPayment
    replacement: str
    occurrence: int = 0  # which match (0 = first)


MUTANTS = (
    Mutant("zero-amount", "a zero amount passes", r"iszero\(amount\)", "0"),
    Mutant("limit-off-by-one", "the per-payment limit admits limit + 1 (2nd `gt(amount, ` is the limit check)",
           r"gt\(amount, ", "gt(sub(amount, 1), ", occurrence=1),
    Mutant("stale-cache", "a spending cache whose period has ended counts as current (3rd timestamp comparison)",
           r"lt\(timestamp\(\), ", "lt(0, ", occurrence=2),
    Mutant("evidence", "the evidence rule is dropped", r"iszero\(evidenceHash\)", "0"),
    Mutant("receipt", "receipts are neither checked nor recorded", r"if receiptId \{", "if 0 {"),
    Mutant("transfer-topic", "the Transfer log names the payer as recipient",
           r"(log3\([^;\n]*?, payer, )vendor\)", r"\1payer)"),
    Mutant("pause-ignored", "the token-wide pause flag is not checked (its load reads 0)",
           r"sload\(_paused\.slot\)", "0"),
    Mutant("pause-unmasked", "the whole slot of the pause flag is tested, not its byte (the program count too)",
           r"and\(shr\(mul\(_paused\.offset, BITS_PER_BYTE\), sload\(_paused\.slot\)\), PAUSED_MASK\)",
           "sload(_paused.slot)"),
)


def fast_path_span(source: str) -> tuple[int, int]:
    start = source.index("function _tryFastPayment")
    end = source.index("\n    function ", start + 1)
    return start, end


def mutate(source: str, m: Mutant) -> str:
    start, end = fast_path_span(source)
    body = source[start:end]
    matches = list(re.finditer(m.pattern, body))
    if len(matches) <= m.occurrence:
        raise LookupError(f"mutant {m.name}: /{m.pattern}/ matches {len(matches)} times in _tryFastPayment, "
                          f"occurrence {m.occurrence} wanted (the fast path changed: update MUTANTS)")
    hit = matches[m.occurrence]
    new_body = body[: hit.start()] + hit.expand(m.replacement) + body[hit.end():]
    return source[:start] + new_body + source[end:]


def forge_binary() -> str:
    """The platform binary of npm @foundry-rs/forge (its node wrapper exits 0 when forge fails)."""
    native = sorted(ROOT.glob("node_modules/@foundry-rs/forge-*/bin/forge"))
    forge = str(native[0]) if native else shutil.which("forge")
    if not forge:
        raise FileNotFoundError("forge not found: run npm ci (npm @foundry-rs/forge)")
    return forge


def halmos_binary() -> str | None:
    for candidate in (ROOT / ".venv" / "halmos" / "bin" / "halmos", shutil.which("halmos")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    return None


def environment(forge: str) -> dict[str, str]:
    env = dict(os.environ)
    env["FOUNDRY_PROFILE"] = "fastpath"
    env["NO_COLOR"] = "1"
    env["PATH"] = os.pathsep.join([str(Path(forge).parent), str(ROOT / "node_modules" / ".bin"), env.get("PATH", "")])
    return env


def copy_tree(dest: Path) -> None:
    shutil.copytree(ROOT / "contracts", dest / "contracts", ignore=shutil.ignore_patterns(".cache"))
    shutil.copytree(ROOT / "test" / "fastpath", dest / "test" / "fastpath", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "foundry.toml", dest / "foundry.toml")
    for link in ("node_modules", "toolchain"):
        (dest / link).symlink_to(ROOT / link)


@dataclass
class Result:
    mutant: Mutant
    killed: bool
    detail: str
    seconds: float


def run_mutant(m: Mutant, halmos: bool = False, fuzz_runs: int = 2000) -> Result:
    began = time.monotonic()
    forge = forge_binary()
    with tempfile.TemporaryDirectory(prefix=f"fastpath-mutant-{m.name}-") as tmp:
        work = Path(tmp)
        copy_tree(work)
        engine = work / ENGINE
        try:
            engine.write_text(mutate(engine.read_text(), m))
        except LookupError as exc:
            return Result(m, False, f"STALE: {exc}", time.monotonic() - began)
        env = environment(forge)
        env["FOUNDRY_FUZZ_RUNS"] = str(fuzz_runs)
        out = subprocess.run([forge, "test"], cwd=work, env=env, capture_output=True, text=True, timeout=1800)
        text = out.stdout + out.stderr
        failures = sorted(set(PROPERTY_FAILURE.findall(text)))
        if "Compiler run failed" in text or "Error (" in text:
            return Result(m, False, "mutant did not compile:\n" + text[-3000:], time.monotonic() - began)
        if out.returncode == 0 or not failures:
            return Result(m, False, "forge test did not fail on a property:\n" + text[-3000:], time.monotonic() - began)
        detail = "forge: " + " | ".join(failures)
        if halmos:
            binary = halmos_binary()
            if binary is None:
                return Result(m, False, detail + "; halmos not installed", time.monotonic() - began)
            h = subprocess.run([binary, "--forge-build-out", "out/fastpath", "--contract", "FastPathSymbolicTest",
                                "--function", "check_fastPathEquivalent"], cwd=work, env=env, capture_output=True,
                               text=True, timeout=3600)
            htext = ANSI.sub("", h.stdout + h.stderr)
            failed = re.findall(r"\[FAIL\]\s+(check_\w+)", htext)
            if h.returncode == 0 or not failed:
                return Result(m, False, detail + "; halmos did not fail:\n" + htext[-3000:], time.monotonic() - began)
            detail += "; halmos: counterexample in " + ", ".join(failed)
        return Result(m, True, detail, time.monotonic() - began)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all): " + ", ".join(x.name for x in MUTANTS))
    parser.add_argument("--halmos", action="store_true", help="also run the halmos proofs on each mutant")
    parser.add_argument("--fuzz-runs", type=int, default=2000)
    args = parser.parse_args(argv)
    unknown = set(args.names) - {x.name for x in MUTANTS}
    if unknown:
        parser.error(f"unknown mutant(s): {', '.join(sorted(unknown))}")
    chosen = [x for x in MUTANTS if not args.names or x.name in args.names]
    all_killed = True
    for m in chosen:
        r = run_mutant(m, halmos=args.halmos, fuzz_runs=args.fuzz_runs)
        all_killed &= r.killed
        print(f"{'KILLED' if r.killed else 'SURVIVED'}  {m.name:18} ({m.what}) [{r.seconds:.0f}s]\n    {r.detail}", flush=True)
    return 0 if all_killed else 1


if __name__ == "__main__":
    sys.exit(main())
