// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {PaymentEngine} from "../../contracts/token/PaymentEngine.sol";
import {DepositTokenBase} from "../../contracts/token/DepositTokenBase.sol";

/// @title FastPathHarness
/// @notice Test-only: exposes the two implementations of a payment in PaymentEngine on whatever storage a test
/// writes into this contract (vm.store), so that they can be run from the same state and their effects compared:
/// `fast` = the assembly `_tryFastPayment`; `check` = `_checkPayment` (the ERC-1404 decision);
/// `slow` = `_checkPayment` + `_executePayment` exactly as `DepositToken.pay` runs them after the fast path
/// declined. Uses only PaymentEngine's internal functions and DepositTokenBase's storage variables, never a
/// slot number or field offset of its own: renames of the engine's constants cannot break it.
contract FastPathHarness is PaymentEngine {
    constructor() DepositTokenBase("FastPathHarness") {}

    function fast(address payer, address vendor, uint256 amount, bytes32 receiptId, bytes32 evidenceHash)
        external
        returns (bool)
    {
        return _tryFastPayment(payer, vendor, amount, receiptId, evidenceHash);
    }

    function check(address payer, address vendor, uint256 amount, bytes32 receiptId, bytes32 evidenceHash)
        external
        view
        returns (uint256 code, uint256 s, uint256 period)
    {
        return _checkPayment(
            payer, _word(accountSlot(payer)), vendor, _word(accountSlot(vendor)), amount, receiptId, evidenceHash
        );
    }

    /// @dev Reverts (naming the rule) when the payment is not allowed, like `pay`.
    function slow(address payer, address vendor, uint256 amount, bytes32 receiptId, bytes32 evidenceHash) external {
        _executePayment(
            payer, _word(accountSlot(payer)), vendor, _word(accountSlot(vendor)), amount, receiptId, evidenceHash
        );
    }

    // --- what a refresh of the spending cache reads (set through the storage variables) -----------------------

    function setConfig(uint16 programId, ProgramConfig calldata c) external {
        _config[programId] = c;
    }

    function setCategoryCap(uint16 programId, uint8 category, uint48 cap) external {
        _categoryCaps[programId][category] = cap;
    }

    function setCapOverride(address spender, uint8 category, bool active, uint48 cap) external {
        _capOverrides[spender][category] = CapOverride(active, cap);
    }

    // --- where the records of one payment live (from the storage variables, not from constants) -------------

    function accountSlot(address account) public view returns (bytes32 slot) {
        Account storage x = _accounts[account];
        assembly ("memory-safe") {
            slot := x.slot
        }
    }

    function rulesSlot(uint16 programId) public view returns (bytes32 slot) {
        ProgramRules storage x = _rules[programId];
        assembly ("memory-safe") {
            slot := x.slot
        }
    }

    function spendingSlot(address spender, uint8 category) public view returns (bytes32 slot) {
        Spending storage x = _spending[spender][category];
        assembly ("memory-safe") {
            slot := x.slot
        }
    }

    /// @dev The token-wide pause flag's slot and its byte offset in it (it shares the slot with _programCount).
    function pausedSlot() public pure returns (bytes32 slot, uint256 byteOffset) {
        assembly ("memory-safe") {
            slot := _paused.slot
            byteOffset := _paused.offset
        }
    }

    function receiptSlot(address vendor, bytes32 receiptId) public view returns (bytes32 slot) {
        mapping(uint256 => uint256) storage words = _receipts[vendor];
        uint256 key = uint256(receiptId) >> 8;
        assembly ("memory-safe") {
            mstore(0x00, key)
            mstore(0x20, words.slot)
            slot := keccak256(0x00, 0x40)
        }
    }

    // --- single fields by name (reading one member never checks the enum, so raw words are fine) ------------

    function isPaused() external view returns (bool) {
        return _paused;
    }

    function programOf(address account) external view returns (uint16) {
        return _accounts[account].programId;
    }

    function categoryOf(address account) external view returns (uint8) {
        return _accounts[account].category;
    }

    function versionOf(uint16 programId) external view returns (uint16) {
        return _rules[programId].version;
    }

    function offsetOf(uint16 programId) external view returns (int16) {
        return _rules[programId].utcOffsetMinutes;
    }

    function balanceOf(address account) external view returns (uint96) {
        return _accounts[account].balance;
    }

    function spendingOf(address spender, uint8 category) external view returns (Spending memory) {
        return _spending[spender][category];
    }

    function periodOf(address spender, uint8 category) external view returns (uint24) {
        return _spending[spender][category].period;
    }

    function _word(bytes32 slot) private view returns (uint256 w) {
        assembly ("memory-safe") {
            w := sload(slot)
        }
    }
}
