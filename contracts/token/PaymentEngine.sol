// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {Calendar, SECONDS_PER_MINUTE, SECONDS_PER_DAY, SECONDS_PER_HOUR, DAYS_PER_WEEK, EPOCH_WEEKDAY} from
    "../libraries/Calendar.sol";
import {
    PackedSlots as P,
    ACCOUNT_BALANCE_MASK,
    ACCOUNT_KIND,
    ACCOUNT_FROZEN,
    ACCOUNT_FLAG_MASK,
    ACCOUNT_CATEGORY,
    ACCOUNT_CATEGORY_MASK,
    ACCOUNT_PROGRAM,
    ACCOUNT_PROGRAM_MASK,
    ACCOUNT_SPENDER_STATUS_MASK,
    ACCOUNT_VENDOR_STATUS_MASK,
    ACTIVE_SPENDER,
    ACTIVE_VENDOR,
    RULES_VERSION_MASK,
    RULES_HALTED,
    RULES_HALTED_MASK,
    PAUSED_MASK,
    BITS_PER_BYTE,
    RULES_START,
    RULES_END,
    RULES_TIME_MASK,
    RULES_OFFSET,
    RULES_OFFSET_MASK,
    RULES_OFFSET_SIGN_BYTE,
    RULES_CATEGORIES,
    RULES_CATEGORIES_MASK,
    RULES_HOURS,
    HOURS_DAY_BITS,
    HOURS_CLOSING,
    HOURS_FIELD_MASK,
    SPENDING_PERIOD_MASK,
    SPENDING_PERIOD_END,
    SPENDING_TIME_MASK,
    SPENDING_VERSION,
    SPENDING_VERSION_MASK,
    SPENDING_SPENT,
    SPENDING_CAP,
    SPENDING_AMOUNT_MASK,
    SPENDING_LIMIT,
    SPENDING_THRESHOLD,
    SPENDING_LIMIT_MASK,
    RECEIPT_WORD_SHIFT,
    RECEIPT_BIT_MASK
} from "../libraries/PackedSlots.sol";
import {Restrictions as R} from "../libraries/Restrictions.sol";
import {DepositTokenBase} from "./DepositTokenBase.sol";

/// @title PaymentEngine
/// @notice The payment rules of the deposit token: one function decides (`_checkPayment`, also behind the
/// ERC-1404 views), one executes (`_executePayment`), one names the broken rule (`_revertPayment`).
/// @dev Works on raw slot words; every field is read through the offsets and masks of PackedSlots.sol, the same
/// names in the Solidity path and in the assembly fast path. A payment in a category the payer already paid in this
/// period reads the token-wide pause flag, payer, vendor, program rules and spending (5 cold slots) and writes
/// payer, vendor, spending. The pause flag is the one slot shared by all payments: reading it (rather than
/// mirroring it into every program's rules word) is what makes `pause`/`unpause` O(1).
abstract contract PaymentEngine is DepositTokenBase {
    using P for Account;
    using P for ProgramRules;
    using P for Spending;

    /// @dev Decides a payment of `amount` from spender word `a` to vendor word `b` (kinds already checked).
    /// @return code A Restrictions code (0 = allowed).
    /// @return s The payer's spending word in the vendor's category, limits refreshed, not yet charged.
    /// @return period yyyymm now in the program's time zone.
    function _checkPayment(
        address payer,
        uint256 a,
        address vendor,
        uint256 b,
        uint256 amount,
        bytes32 receiptId,
        bytes32 evidenceHash
    ) internal view returns (uint256 code, uint256 s, uint256 period) {
        if (amount == 0) return (R.ZERO_AMOUNT, 0, 0);
        uint16 programId = uint16((a >> ACCOUNT_PROGRAM) & ACCOUNT_PROGRAM_MASK);
        uint256 r = _rules[programId].word();
        bool tokenPaused = _paused;
        // One comparison each for "spender, not frozen", "vendor, not frozen, not suspended", "token not paused",
        // "program not paused"; the slow path finds out which one failed.
        if (
            (a >> ACCOUNT_KIND) & ACCOUNT_SPENDER_STATUS_MASK != ACTIVE_SPENDER
                || (b >> ACCOUNT_KIND) & ACCOUNT_VENDOR_STATUS_MASK != ACTIVE_VENDOR || tokenPaused
                || (r >> RULES_HALTED) & RULES_HALTED_MASK != 0
        ) return (_statusCode(a, b, r, tokenPaused), 0, 0);
        if (block.timestamp < (r >> RULES_START) & RULES_TIME_MASK) return (R.PROGRAM_NOT_STARTED, 0, 0);
        if (block.timestamp >= (r >> RULES_END) & RULES_TIME_MASK) return (R.PROGRAM_ENDED, 0, 0);
        uint256 weekday;
        uint256 hour;
        (period, weekday, hour) = Calendar.localTime(block.timestamp, _utcOffset(r));
        uint256 window = r >> (RULES_HOURS + weekday * HOURS_DAY_BITS);
        if (hour < window & HOURS_FIELD_MASK || hour >= (window >> HOURS_CLOSING) & HOURS_FIELD_MASK) {
            return (R.OUTSIDE_HOURS, 0, period);
        }
        uint8 category = uint8((b >> ACCOUNT_CATEGORY) & ACCOUNT_CATEGORY_MASK);
        // Masked to the 64-bit set first: a category above 63 (never registered) reads 0, not an hours bit.
        if ((((r >> RULES_CATEGORIES) & RULES_CATEGORIES_MASK) >> category) & 1 == 0) {
            return (R.CATEGORY_NOT_ALLOWED, 0, period);
        }
        s = _currentSpending(payer, programId, category, r, period);
        if (amount > (s >> SPENDING_LIMIT) & SPENDING_LIMIT_MASK) return (R.OVER_PAYMENT_LIMIT, s, period);
        // slither-disable-next-line unused-return
        (,, uint256 capLeft) = P.spentAndCap(s);
        if (amount > capLeft) return (R.OVER_CATEGORY_CAP, s, period);
        if (evidenceHash == bytes32(0) && amount >= (s >> SPENDING_THRESHOLD) & SPENDING_LIMIT_MASK) {
            return (R.EVIDENCE_REQUIRED, s, period);
        }
        if (receiptId != bytes32(0) && _receiptUsed(vendor, receiptId)) return (R.RECEIPT_USED, s, period);
        if (amount > a & ACCOUNT_BALANCE_MASK) return (R.INSUFFICIENT_BALANCE, s, period);
        return (R.OK, s, period);
    }

    /// @dev Which of the status checks failed (kinds are known to be spender and vendor). PAUSED covers both
    /// pauses; `_revertPaused` tells them apart (TokenPaused before ProgramHalted).
    function _statusCode(uint256 a, uint256 b, uint256 r, bool tokenPaused) private pure returns (uint256) {
        if (tokenPaused || (r >> RULES_HALTED) & RULES_HALTED_MASK != 0) return R.PAUSED;
        if ((a >> ACCOUNT_FROZEN) & ACCOUNT_FLAG_MASK != 0) return R.SENDER_FROZEN;
        if ((b >> ACCOUNT_FROZEN) & ACCOUNT_FLAG_MASK != 0) return R.RECIPIENT_FROZEN;
        return R.VENDOR_SUSPENDED;
    }

    /// @dev The program's UTC offset in minutes from its rules word `r`.
    function _utcOffset(uint256 r) internal pure returns (int256) {
        return int16(uint16((r >> RULES_OFFSET) & RULES_OFFSET_MASK));
    }

    /// @dev The common case of a payment, in assembly: the payer already paid in the vendor's category this
    /// period under the current program version, so its cached limits are current. Accepts only when every
    /// rule of `_checkPayment` holds (same order, same comparisons) and then executes exactly what
    /// `_executePayment` would; in every other case it changes nothing and returns false, and the caller runs
    /// the Solidity path, which refreshes the cache or names the broken rule. Tests run every payment through
    /// both the ERC-1404 view and this path and compare.
    ///
    /// The `Payment` event's period is the cached one (the spending word's `period`), not recomputed from the
    /// clock. That is the period of `block.timestamp` in the program's offset because of two assumptions:
    /// (1) block timestamps never go back: the cache is used only before its `periodEnd` and was written at a
    /// time inside its period, so "now" is inside that period too; (2) the program's UTC offset changes only
    /// through `updateProgram`, which always bumps the program version, so a cache computed in the old offset
    /// is refused here (version mismatch) and the Solidity path recomputes the period in the new offset.
    /// tests/contracts/test_payment_engine_findings.py checks (2) across a month boundary in both directions.
    function _tryFastPayment(address payer, address vendor, uint256 amount, bytes32 receiptId, bytes32 evidenceHash)
        internal
        returns (bool done)
    {
        bytes32 transferTopic = IERC20.Transfer.selector;
        bytes32 paymentTopic = Payment.selector;
        assembly ("memory-safe") {
            // Only the scratch space (0x00-0x3f) and memory at the free pointer are written; nothing is allocated.
            function mappingSlot(key, slot) -> result {
                mstore(0x00, key)
                mstore(0x20, slot)
                result := keccak256(0x00, 0x40)
            }
            for {} 1 {} {
                let payerSlot := mappingSlot(payer, _accounts.slot)
                let a := sload(payerSlot)
                let vendorSlot := mappingSlot(vendor, _accounts.slot)
                let b := sload(vendorSlot)
                // token not paused (the flag shares its slot with other variables: shifted to its byte, masked)
                if and(shr(mul(_paused.offset, BITS_PER_BYTE), sload(_paused.slot)), PAUSED_MASK) { break }
                // spender, not frozen | vendor, not frozen, not suspended | amount > 0 | amount <= balance
                if or(
                    or(
                        sub(and(shr(ACCOUNT_KIND, a), ACCOUNT_SPENDER_STATUS_MASK), ACTIVE_SPENDER),
                        sub(and(shr(ACCOUNT_KIND, b), ACCOUNT_VENDOR_STATUS_MASK), ACTIVE_VENDOR)
                    ),
                    or(iszero(amount), gt(amount, and(a, ACCOUNT_BALANCE_MASK)))
                ) { break }
                let programId := and(shr(ACCOUNT_PROGRAM, a), ACCOUNT_PROGRAM_MASK)
                let r := sload(mappingSlot(programId, _rules.slot))
                // program not paused on its own | started | not ended
                if or(
                    and(shr(RULES_HALTED, r), RULES_HALTED_MASK),
                    or(
                        lt(timestamp(), and(shr(RULES_START, r), RULES_TIME_MASK)),
                        iszero(lt(timestamp(), and(shr(RULES_END, r), RULES_TIME_MASK)))
                    )
                ) { break }
                // Local time in the program's offset (see Calendar.localTime).
                let local := add(
                    timestamp(),
                    mul(signextend(RULES_OFFSET_SIGN_BYTE, and(shr(RULES_OFFSET, r), RULES_OFFSET_MASK)), SECONDS_PER_MINUTE)
                )
                let day := div(local, SECONDS_PER_DAY)
                let hour := div(mod(local, SECONDS_PER_DAY), SECONDS_PER_HOUR)
                let window := shr(add(RULES_HOURS, mul(mod(add(day, EPOCH_WEEKDAY), DAYS_PER_WEEK), HOURS_DAY_BITS)), r)
                if or(
                    lt(hour, and(window, HOURS_FIELD_MASK)),
                    iszero(lt(hour, and(shr(HOURS_CLOSING, window), HOURS_FIELD_MASK)))
                ) { break }
                let category := and(shr(ACCOUNT_CATEGORY, b), ACCOUNT_CATEGORY_MASK)
                // Masked to the 64-bit set first, as in _checkPayment: a category above 63 reads 0.
                if iszero(and(shr(category, and(shr(RULES_CATEGORIES, r), RULES_CATEGORIES_MASK)), 1)) { break }
                let spendingSlot := mappingSlot(category, mappingSlot(payer, _spending.slot))
                let s := sload(spendingSlot)
                // Cached limits current: the cached period has not ended and the program version is unchanged.
                if or(
                    iszero(lt(timestamp(), and(shr(SPENDING_PERIOD_END, s), SPENDING_TIME_MASK))),
                    sub(and(shr(SPENDING_VERSION, s), SPENDING_VERSION_MASK), and(r, RULES_VERSION_MASK))
                ) { break }
                let spent := add(and(shr(SPENDING_SPENT, s), SPENDING_AMOUNT_MASK), amount)
                // per-payment limit | category cap | evidence at or above the threshold
                if or(
                    or(
                        gt(amount, and(shr(SPENDING_LIMIT, s), SPENDING_LIMIT_MASK)),
                        gt(spent, and(shr(SPENDING_CAP, s), SPENDING_AMOUNT_MASK))
                    ),
                    and(iszero(evidenceHash), iszero(lt(amount, and(shr(SPENDING_THRESHOLD, s), SPENDING_LIMIT_MASK))))
                ) { break }
                if receiptId {
                    let receiptSlot :=
                        mappingSlot(shr(RECEIPT_WORD_SHIFT, receiptId), mappingSlot(vendor, _receipts.slot))
                    let bits := sload(receiptSlot)
                    // slither-disable-next-line incorrect-shift
                    let bit := shl(and(receiptId, RECEIPT_BIT_MASK), 1)
                    if and(bits, bit) { break }
                    sstore(receiptSlot, or(bits, bit))
                }
                // Effects: amount <= balance; vendor balance + amount <= totalSupply < 2^96; spent <= cap < 2^64.
                sstore(payerSlot, sub(a, amount))
                sstore(vendorSlot, add(b, amount))
                sstore(spendingSlot, add(s, shl(SPENDING_SPENT, amount)))
                let m := mload(0x40)
                mstore(m, amount)
                log3(m, 0x20, transferTopic, payer, vendor)
                mstore(m, category)
                mstore(add(m, 0x20), and(s, SPENDING_PERIOD_MASK))
                mstore(add(m, 0x40), amount)
                mstore(add(m, 0x60), receiptId)
                mstore(add(m, 0x80), evidenceHash)
                mstore(add(m, 0xa0), sub(and(shr(SPENDING_CAP, s), SPENDING_AMOUNT_MASK), spent))
                log4(m, 0xc0, paymentTopic, payer, vendor, programId)
                done := 1
                break
            }
        }
    }

    /// @dev Moves `amount` from spender to vendor if every rule allows it, else reverts naming the rule.
    function _executePayment(
        address payer,
        uint256 a,
        address vendor,
        uint256 b,
        uint256 amount,
        bytes32 receiptId,
        bytes32 evidenceHash
    ) internal {
        (uint256 code, uint256 s, uint256 period) = _checkPayment(payer, a, vendor, b, amount, receiptId, evidenceHash);
        if (code != R.OK) _revertPayment(code, payer, a, vendor, b, amount, receiptId);
        uint256 category = (b >> ACCOUNT_CATEGORY) & ACCOUNT_CATEGORY_MASK;
        unchecked {
            // amount <= payer balance (checked); vendor balance + amount <= totalSupply < 2^96;
            // spent + amount <= cap < 2^64, so no field overflows into its neighbour.
            _accounts[payer].store(a - amount);
            _accounts[vendor].store(b + amount);
            s += amount << SPENDING_SPENT;
        }
        _spending[payer][uint8(category)].store(s);
        if (receiptId != bytes32(0)) {
            _receipts[vendor][uint256(receiptId) >> RECEIPT_WORD_SHIFT] |= 1 << (uint256(receiptId) & RECEIPT_BIT_MASK);
        }
        // slither-disable-next-line unused-return
        (,, uint256 capLeft) = P.spentAndCap(s);
        uint256 programId = (a >> ACCOUNT_PROGRAM) & ACCOUNT_PROGRAM_MASK;
        bytes32 transferTopic = IERC20.Transfer.selector;
        bytes32 paymentTopic = Payment.selector;
        // Hand-encoded logs (same ABI encoding as `emit`): this is the hottest code of the system.
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, amount)
            log3(m, 0x20, transferTopic, payer, vendor)
            mstore(m, category)
            mstore(add(m, 0x20), period)
            mstore(add(m, 0x40), amount)
            mstore(add(m, 0x60), receiptId)
            mstore(add(m, 0x80), evidenceHash)
            mstore(add(m, 0xa0), capLeft)
            log4(m, 0xc0, paymentTopic, payer, vendor, programId)
        }
    }

    /// @dev The spending word for the current `period` of a program with rules word `r`: the cached one while
    /// its period has not ended and the program is unchanged, else re-read from the program (what was spent is
    /// kept within the same period).
    function _currentSpending(address spender, uint16 programId, uint8 category, uint256 r, uint256 period)
        internal
        view
        returns (uint256 s)
    {
        s = _spending[spender][category].word();
        uint256 version = r & RULES_VERSION_MASK;
        if (
            block.timestamp < (s >> SPENDING_PERIOD_END) & SPENDING_TIME_MASK
                && (s >> SPENDING_VERSION) & SPENDING_VERSION_MASK == version
        ) return s;
        // slither-disable-next-line incorrect-equality
        uint256 spent = s & SPENDING_PERIOD_MASK == period ? (s >> SPENDING_SPENT) & SPENDING_AMOUNT_MASK : 0;
        CapOverride memory o = _capOverrides[spender][category];
        ProgramConfig memory c = _config[programId];
        uint256 cap = o.active ? o.cap : _categoryCaps[programId][category];
        uint256 end = Calendar.periodEnd(period, _utcOffset(r));
        return P.spendingWord(period, end, version, spent, cap, c.perPaymentLimit, c.evidenceThreshold);
    }

    /// @dev Reverts with the error that names the rule behind `code`, with the values that broke it.
    // slither-disable-next-line incorrect-equality
    function _revertPayment(
        uint256 code,
        address payer,
        uint256 a,
        address vendor,
        uint256 b,
        uint256 amount,
        bytes32 receiptId
    ) internal view {
        uint16 programId = uint16((a >> ACCOUNT_PROGRAM) & ACCOUNT_PROGRAM_MASK);
        uint8 category = uint8((b >> ACCOUNT_CATEGORY) & ACCOUNT_CATEGORY_MASK);
        ProgramRules memory r = _rules[programId];
        (uint256 period, uint256 weekday, uint256 hour) = Calendar.localTime(block.timestamp, r.utcOffsetMinutes);
        if (code == R.ZERO_AMOUNT) revert ZeroAmount();
        if (code == R.PAUSED) _revertPaused(programId);
        if (code == R.SENDER_FROZEN) revert AccountFrozen(payer);
        if (code == R.RECIPIENT_FROZEN) revert AccountFrozen(vendor);
        if (code == R.VENDOR_SUSPENDED) revert VendorIsSuspended(vendor);
        if (code == R.PROGRAM_NOT_STARTED) revert ProgramNotStarted(programId, r.start);
        if (code == R.PROGRAM_ENDED) revert ProgramEnded(programId, r.end);
        if (code == R.OUTSIDE_HOURS) revert OutsideAllowedHours(programId, uint8(weekday), uint8(hour));
        if (code == R.CATEGORY_NOT_ALLOWED) revert CategoryNotAllowed(programId, vendor, category);
        uint256 s = _currentSpending(payer, programId, category, _rules[programId].word(), period);
        if (code == R.OVER_PAYMENT_LIMIT) {
            revert PaymentLimitExceeded(programId, amount, (s >> SPENDING_LIMIT) & SPENDING_LIMIT_MASK);
        }
        // slither-disable-next-line unused-return
        (,, uint256 capLeft) = P.spentAndCap(s);
        if (code == R.OVER_CATEGORY_CAP) revert CategoryCapExceeded(payer, category, uint32(period), amount, capLeft);
        if (code == R.EVIDENCE_REQUIRED) {
            revert EvidenceRequired(amount, (s >> SPENDING_THRESHOLD) & SPENDING_LIMIT_MASK);
        }
        if (code == R.RECEIPT_USED) revert ReceiptAlreadyUsed(vendor, receiptId);
        revert InsufficientBalance(payer, a & ACCOUNT_BALANCE_MASK, amount);
    }
}
