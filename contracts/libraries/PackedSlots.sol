// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IDepositTokenTypes} from "../interfaces/IDepositTokenTypes.sol";

// Field offsets and masks of the one-slot records in IDepositTokenTypes, as Solidity packs them (first member in
// the lowest bits). They are file-level number literals so that inline assembly can use them too: the payment
// engine's assembly fast path, its Solidity path and this library read every field through these names only.
// The offsets must follow the struct declarations; tests/contracts/test_architecture.py compares them with solc's
// storage layout of the structs.

// Every field is named by its offset (FIELD, in bits) and its mask (FIELD_MASK, applied after shifting it down):
// `(word >> FIELD) & FIELD_MASK`. A field at bit 0 needs no shift.

// --- Account: balance uint96 | kind uint8 | frozen bool | suspended bool | category uint8 | programId uint16 ----
uint256 constant ACCOUNT_BALANCE_MASK = 0xffffffffffffffffffffffff; // at bit 0, uint96
uint256 constant ACCOUNT_KIND = 96;
uint256 constant ACCOUNT_KIND_MASK = 0xff;
uint256 constant ACCOUNT_FROZEN = 104;
uint256 constant ACCOUNT_SUSPENDED = 112;
uint256 constant ACCOUNT_FLAG_MASK = 0xff; // frozen, suspended (bool)
uint256 constant ACCOUNT_CATEGORY = 120;
uint256 constant ACCOUNT_CATEGORY_MASK = 0xff; // uint8
uint256 constant ACCOUNT_PROGRAM = 128;
uint256 constant ACCOUNT_PROGRAM_MASK = 0xffff; // uint16
/// @dev kind | frozen of a spender, at ACCOUNT_KIND: equals ACTIVE_SPENDER for a spender that may pay.
uint256 constant ACCOUNT_SPENDER_STATUS_MASK = 0xffff;
/// @dev kind | frozen | suspended of a vendor, at ACCOUNT_KIND: equals ACTIVE_VENDOR for a vendor that may be paid.
uint256 constant ACCOUNT_VENDOR_STATUS_MASK = 0xffffff;
/// @dev Kind.Spender, not frozen (tests check it against the enum).
uint256 constant ACTIVE_SPENDER = 2;
/// @dev Kind.Vendor, not frozen, not suspended (tests check it against the enum).
uint256 constant ACTIVE_VENDOR = 3;

// --- ProgramRules: version uint16 | halted bool | start uint40 | end uint40 | utcOffsetMinutes int16 |
// categories uint64 | openingHours uint72 --------------------------------------------------------------------------
uint256 constant RULES_VERSION_MASK = 0xffff; // at bit 0, uint16
uint256 constant RULES_HALTED = 16;
uint256 constant RULES_HALTED_MASK = 0xff; // bool
uint256 constant RULES_START = 24;
uint256 constant RULES_END = 64;
uint256 constant RULES_TIME_MASK = 0xffffffffff; // uint40: start, end
uint256 constant RULES_OFFSET = 104;
uint256 constant RULES_OFFSET_MASK = 0xffff; // int16, two's complement
/// @dev `signextend(RULES_OFFSET_SIGN_BYTE, offsetField)` is the offset as a signed word.
uint256 constant RULES_OFFSET_SIGN_BYTE = 1;
uint256 constant RULES_CATEGORIES = 120;
/// @dev The category set: bit c allows category c (0-63). Every reader masks with it first, so a category above
/// 63 reads a zero bit (not allowed), never a bit of the opening hours above the set.
uint256 constant RULES_CATEGORIES_MASK = 0xffffffffffffffff; // uint64
uint256 constant RULES_HOURS = 184;
/// @dev openingHours: weekday d (0 = Monday) at bit HOURS_DAY_BITS * d: the opening hour (HOURS_FIELD_MASK), and
/// HOURS_CLOSING bits above it the closing hour (exclusive, up to 24).
uint256 constant HOURS_DAY_BITS = 10;
uint256 constant HOURS_CLOSING = 5;
uint256 constant HOURS_FIELD_MASK = 31;
/// @dev Weekdays in openingHours; the bits above HOURS_DAY_BITS * HOURS_DAYS must be zero.
uint256 constant HOURS_DAYS = 7;

// --- Spending: period uint24 | periodEnd uint40 | version uint16 | spent uint48 | cap uint48 |
// perPaymentLimit uint40 | evidenceThreshold uint40 ----------------------------------------------------------------
uint256 constant SPENDING_PERIOD_MASK = 0xffffff; // at bit 0, uint24 yyyymm
uint256 constant SPENDING_PERIOD_END = 24;
uint256 constant SPENDING_TIME_MASK = 0xffffffffff; // uint40
uint256 constant SPENDING_VERSION = 64;
uint256 constant SPENDING_VERSION_MASK = 0xffff; // uint16
uint256 constant SPENDING_SPENT = 80;
uint256 constant SPENDING_CAP = 128;
uint256 constant SPENDING_AMOUNT_MASK = 0xffffffffffff; // uint48: spent, cap
uint256 constant SPENDING_LIMIT = 176;
uint256 constant SPENDING_THRESHOLD = 216;
uint256 constant SPENDING_LIMIT_MASK = 0xffffffffff; // uint40: perPaymentLimit, evidenceThreshold

// --- The token-wide pause: DepositTokenBase._paused (bool), which shares its slot with _programCount ------------
// Inline assembly reads it as `and(shr(mul(_paused.offset, BITS_PER_BYTE), sload(_paused.slot)), PAUSED_MASK)`:
// slot and byte offset come from the variable itself (`.offset` counts bytes), only the width is named here.
uint256 constant PAUSED_MASK = 0xff; // bool
uint256 constant BITS_PER_BYTE = 8;

// --- Receipts: vendor => (receiptId >> RECEIPT_WORD_SHIFT) => bit (receiptId & RECEIPT_BIT_MASK) -------------------
uint256 constant RECEIPT_WORD_SHIFT = 8;
uint256 constant RECEIPT_BIT_MASK = 0xff;

/// @title PackedSlots
/// @notice Raw loads and stores of the one-slot records in IDepositTokenTypes. The payment path works on these
/// words directly: one SLOAD per record and one add or subtract per balance, instead of unpacking every field
/// into memory. Field offsets and masks are the file-level constants above.
library PackedSlots {
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
        return period | periodEnd << SPENDING_PERIOD_END | version << SPENDING_VERSION | spent << SPENDING_SPENT
            | cap << SPENDING_CAP | perPaymentLimit << SPENDING_LIMIT | evidenceThreshold << SPENDING_THRESHOLD;
    }

    /// @notice (spent, cap, capLeft) of a spending word.
    function spentAndCap(uint256 s) internal pure returns (uint256 spent, uint256 cap, uint256 capLeft) {
        spent = (s >> SPENDING_SPENT) & SPENDING_AMOUNT_MASK;
        cap = (s >> SPENDING_CAP) & SPENDING_AMOUNT_MASK;
        unchecked {
            capLeft = cap > spent ? cap - spent : 0;
        }
    }
}
