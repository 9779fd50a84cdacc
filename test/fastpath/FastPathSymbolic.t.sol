// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {CheatsBase} from "./Cheats.sol";
import {FastPathHarness} from "./FastPathHarness.sol";

/// @notice halmos (symbolic execution): `check_*` functions, run with `halmos` in the fastpath profile (see
/// tests/contracts/test_fast_path_equivalence.py). Every argument is a symbolic 256-bit value: the raw words
/// of payer account, vendor account, program rules, spending, the vendor's receipt word, the word holding the
/// token-wide pause flag (shared with the program count: every bit symbolic), and amount, receipt id, evidence
/// hash, timestamp. Two harnesses hold the same words; one runs the fast path, the other
/// `_checkPayment` (+ `_executePayment`). For every path the solver finds, it proves:
///  - fast path accepts => `_checkPayment` returns 0 and `_executePayment` does not revert, and afterwards the
///    six slots a payment reads (payer, vendor, rules, spending, receipt word, pause flag) hold the same values;
///  - fast path declines => the harness's storage is untouched (no SSTORE at all).
/// Logs are not compared here (halmos has no vm.getRecordedLogs); the differential fuzzer compares them.
contract FastPathSymbolicTest is CheatsBase {
    address internal constant PAYER = address(0x1111);
    address internal constant VENDOR = address(0x2222);

    FastPathHarness internal x;
    FastPathHarness internal y;

    function setUp() public {
        x = new FastPathHarness();
        y = new FastPathHarness();
    }

    function _write(bytes32 slot, uint256 w) internal {
        vm.store(address(x), slot, bytes32(w));
        vm.store(address(y), slot, bytes32(w));
    }

    function _slots(bytes32 receiptId) internal view returns (bytes32[6] memory k) {
        uint16 programId = x.programOf(PAYER);
        uint8 category = x.categoryOf(VENDOR);
        k[0] = x.accountSlot(PAYER);
        k[1] = x.accountSlot(VENDOR);
        k[2] = x.rulesSlot(programId);
        k[3] = x.spendingSlot(PAYER, category);
        k[4] = x.receiptSlot(VENDOR, receiptId);
        (k[5],) = x.pausedSlot();
    }

    function _setUpWords(
        uint256 a,
        uint256 b,
        uint256 r,
        uint256 s,
        uint256 bits,
        uint256 pausedWord,
        bytes32 receiptId,
        uint256 t
    ) internal returns (bytes32[6] memory k) {
        vm.warp(t);
        _write(x.accountSlot(PAYER), a);
        _write(x.accountSlot(VENDOR), b);
        k = _slots(receiptId);
        _write(k[2], r);
        _write(k[3], s);
        _write(k[4], bits);
        _write(k[5], pausedWord);
    }

    function _prove(
        uint256 a,
        uint256 b,
        uint256 r,
        uint256 s,
        uint256 bits,
        uint256 pausedWord,
        uint256 amount,
        bytes32 receiptId,
        bytes32 evidence,
        uint256 t
    ) internal {
        bytes32[6] memory k = _setUpWords(a, b, r, s, bits, pausedWord, receiptId, t);
        uint256[6] memory before;
        for (uint256 i = 0; i < 6; i++) {
            before[i] = uint256(vm.load(address(x), k[i]));
        }
        bool ok = x.fast(PAYER, VENDOR, amount, receiptId, evidence);
        if (!ok) {
            for (uint256 i = 0; i < 6; i++) {
                assert(uint256(vm.load(address(x), k[i])) == before[i]);
            }
            return;
        }
        (uint256 code,,) = y.check(PAYER, VENDOR, amount, receiptId, evidence);
        assert(code == 0);
        // (halmos ignores paths that revert, so the revert is caught and made a failed assertion)
        try y.slow(PAYER, VENDOR, amount, receiptId, evidence) {}
        catch {
            assert(false);
        }
        for (uint256 i = 0; i < 6; i++) {
            assert(vm.load(address(x), k[i]) == vm.load(address(y), k[i]));
        }
    }

    /// @notice Everything symbolic, with a receipt id.
    function check_fastPathEquivalent(
        uint256 a,
        uint256 b,
        uint256 r,
        uint256 s,
        uint256 bits,
        uint256 pausedWord,
        uint256 amount,
        bytes32 receiptId,
        bytes32 evidence,
        uint40 t
    ) public {
        vm.assume(receiptId != 0);
        _prove(a, b, r, s, bits, pausedWord, amount, receiptId, evidence, t);
    }

    /// @notice Everything symbolic, without a receipt id (transfer() and most payments).
    function check_fastPathEquivalentNoReceipt(
        uint256 a,
        uint256 b,
        uint256 r,
        uint256 s,
        uint256 pausedWord,
        uint256 amount,
        bytes32 evidence,
        uint40 t
    ) public {
        _prove(a, b, r, s, 0, pausedWord, amount, bytes32(0), evidence, t);
    }

    /// @notice Vacuity check, expected to FAIL (halmos must find a counterexample): the fast path does accept
    /// some state, so the two proofs above are not vacuously true. The CI test asserts that this one fails.
    function check_vacuity_fastPathAcceptsSomething(
        uint256 a,
        uint256 b,
        uint256 r,
        uint256 s,
        uint256 pausedWord,
        uint256 amount,
        bytes32 evidence,
        uint40 t
    ) public {
        _setUpWords(a, b, r, s, 0, pausedWord, bytes32(0), t);
        assert(!x.fast(PAYER, VENDOR, amount, bytes32(0), evidence));
    }
}
