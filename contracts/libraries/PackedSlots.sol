// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IDepositTokenTypes} from "../interfaces/IDepositTokenTypes.sol";

/// @title PackedSlots
/// @notice Field offsets of the one-slot records in IDepositTokenTypes, as Solidity packs them (first member in
/// the lowest bits), and raw loads and stores of those slots. The payment path works on these words directly:
/// one SLOAD per record and one add or subtract per balance, instead of unpacking every field into memory.
/// @dev The offsets must follow the struct declarations; tests compare every field read through a word with
/// the same field read through the struct.
library PackedSlots {
    // Account: balance uint96 | kind uint8 | frozen bool | suspended bool | category uint8 | programId uint16
    uint256 internal constant ACCOUNT_KIND = 96;
    uint256 internal constant ACCOUNT_FROZEN = 104;
    uint256 internal constant ACCOUNT_SUSPENDED = 112;
    uint256 internal constant ACCOUNT_CATEGORY = 120;
    uint256 internal constant ACCOUNT_PROGRAM = 128;
    /// @dev kind, frozen and suspended of an active vendor / a spender that may pay, compared in one step.
    uint256 internal constant ACTIVE_VENDOR = uint256(uint8(IDepositTokenTypes.Kind.Vendor));
    uint256 internal constant ACTIVE_SPENDER = uint256(uint8(IDepositTokenTypes.Kind.Spender));

    // ProgramRules: version uint16 | halted bool | start uint40 | end uint40 | utcOffsetMinutes int16 |
    // categories uint64 | openingHours uint72
    uint256 internal constant RULES_HALTED = 16;
    uint256 internal constant RULES_START = 24;
    uint256 internal constant RULES_END = 64;
    uint256 internal constant RULES_OFFSET = 104;
    uint256 internal constant RULES_CATEGORIES = 120;
    uint256 internal constant RULES_HOURS = 184;

    // Spending: period uint24 | periodEnd uint40 | version uint16 | spent uint48 | cap uint48 |
    // perPaymentLimit uint40 | evidenceThreshold uint40
    uint256 internal constant SPENDING_PERIOD_END = 24;
    uint256 internal constant SPENDING_VERSION = 64;
    uint256 internal constant SPENDING_SPENT = 80;
    uint256 internal constant SPENDING_CAP = 128;
    uint256 internal constant SPENDING_LIMIT = 176;
    uint256 internal constant SPENDING_THRESHOLD = 216;

    /// @notice The raw word of an account record.
    function word(IDepositTokenTypes.Account storage record) internal view returns (uint256 w) {
        assembly ("memory-safe") {
            w := sload(record.slot)
        }
    }

    /// @notice Overwrites an account record with a raw word.
    function store(IDepositTokenTypes.Account storage record, uint256 w) internal {
        assembly ("memory-safe") {
            sstore(record.slot, w)
        }
    }

    /// @notice The raw word of a program's rules.
    function word(IDepositTokenTypes.ProgramRules storage record) internal view returns (uint256 w) {
        assembly ("memory-safe") {
            w := sload(record.slot)
        }
    }

    /// @notice The raw word of a spending record.
    function word(IDepositTokenTypes.Spending storage record) internal view returns (uint256 w) {
        assembly ("memory-safe") {
            w := sload(record.slot)
        }
    }

    /// @notice Overwrites a spending record with a raw word.
    function store(IDepositTokenTypes.Spending storage record, uint256 w) internal {
        assembly ("memory-safe") {
            sstore(record.slot, w)
        }
    }

    /// @notice A spending word from its fields.
    function spendingWord(
        uint256 period,
        uint256 periodEnd,
        uint256 version,
        uint256 spent,
        uint256 cap,
        uint256 perPaymentLimit,
        uint256 evidenceThreshold
    ) internal pure returns (uint256) {
        return period | periodEnd << SPENDING_PERIOD_END | version << SPENDING_VERSION | spent << SPENDING_SPENT | cap << SPENDING_CAP
            | perPaymentLimit << SPENDING_LIMIT | evidenceThreshold << SPENDING_THRESHOLD;
    }

    /// @notice (spent, cap, capLeft) of a spending word.
    function spentAndCap(uint256 s) internal pure returns (uint256 spent, uint256 cap, uint256 capLeft) {
        spent = uint48(s >> SPENDING_SPENT);
        cap = uint48(s >> SPENDING_CAP);
        unchecked {
            capLeft = cap > spent ? cap - spent : 0;
        }
    }
}
