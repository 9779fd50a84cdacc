// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

import {Calendar} from "../libraries/Calendar.sol";
import {PackedSlots as P} from "../libraries/PackedSlots.sol";
import {Restrictions as R} from "../libraries/Restrictions.sol";
import {DepositTokenBase} from "./DepositTokenBase.sol";

/// @title PaymentEngine
/// @notice The payment rules of the deposit token: one function decides (`_checkPayment`, also behind the
/// ERC-1404 views), one executes (`_executePayment`), one names the broken rule (`_revertPayment`).
/// @dev Works on raw slot words (see PackedSlots). A payment in a category the payer already paid in this
/// period reads payer, vendor, program rules and spending (4 cold slots) and writes payer, vendor, spending.
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
        uint16 programId = uint16(a >> P.ACCOUNT_PROGRAM);
        uint256 r = _rules[programId].word();
        // One comparison each for "spender, not frozen", "vendor, not frozen, not suspended", "not halted";
        // the slow path finds out which one failed.
        if (
            (a >> P.ACCOUNT_KIND) & 0xffff != P.ACTIVE_SPENDER || (b >> P.ACCOUNT_KIND) & 0xffffff != P.ACTIVE_VENDOR
                || uint8(r >> P.RULES_HALTED) != 0
        ) return (_statusCode(a, b, r), 0, 0);
        if (block.timestamp < uint40(r >> P.RULES_START)) return (R.PROGRAM_NOT_STARTED, 0, 0);
        if (block.timestamp >= uint40(r >> P.RULES_END)) return (R.PROGRAM_ENDED, 0, 0);
        uint256 weekday;
        uint256 hour;
        (period, weekday, hour) = Calendar.localTime(block.timestamp, int16(uint16(r >> P.RULES_OFFSET)));
        uint256 window = r >> (P.RULES_HOURS + weekday * 10);
        if (hour < window & 31 || hour >= (window >> 5) & 31) return (R.OUTSIDE_HOURS, 0, period);
        uint8 category = uint8(b >> P.ACCOUNT_CATEGORY);
        if ((r >> (P.RULES_CATEGORIES + category)) & 1 == 0) return (R.CATEGORY_NOT_ALLOWED, 0, period);
        s = _currentSpending(payer, programId, category, r, period);
        if (amount > uint40(s >> P.SPENDING_LIMIT)) return (R.OVER_PAYMENT_LIMIT, s, period);
        // slither-disable-next-line unused-return
        (,, uint256 capLeft) = P.spentAndCap(s);
        if (amount > capLeft) return (R.OVER_CATEGORY_CAP, s, period);
        if (evidenceHash == bytes32(0) && amount >= uint40(s >> P.SPENDING_THRESHOLD)) {
            return (R.EVIDENCE_REQUIRED, s, period);
        }
        if (receiptId != bytes32(0) && _receiptUsed(vendor, receiptId)) return (R.RECEIPT_USED, s, period);
        if (amount > uint96(a)) return (R.INSUFFICIENT_BALANCE, s, period);
        return (R.OK, s, period);
    }

    /// @dev Which of the status checks failed (kinds are known to be spender and vendor).
    function _statusCode(uint256 a, uint256 b, uint256 r) private pure returns (uint256) {
        if (uint8(r >> P.RULES_HALTED) != 0) return R.PAUSED;
        if (uint8(a >> P.ACCOUNT_FROZEN) != 0) return R.SENDER_FROZEN;
        if (uint8(b >> P.ACCOUNT_FROZEN) != 0) return R.RECIPIENT_FROZEN;
        return R.VENDOR_SUSPENDED;
    }

    /// @dev The common case of a payment, in assembly: the payer already paid in the vendor's category this
    /// period under the current program version, so its cached limits are current. Accepts only when every
    /// rule of `_checkPayment` holds (same order, same comparisons) and then executes exactly what
    /// `_executePayment` would; in every other case it changes nothing and returns false, and the caller runs
    /// the Solidity path, which refreshes the cache or names the broken rule. Tests run every payment through
    /// both the ERC-1404 view and this path and compare.
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
                // spender, not frozen | vendor, not frozen, not suspended | amount > 0 | amount <= balance
                if or(
                    or(sub(and(shr(96, a), 0xffff), 2), sub(and(shr(96, b), 0xffffff), 3)),
                    or(iszero(amount), gt(amount, and(a, 0xffffffffffffffffffffffff)))
                ) { break }
                let programId := and(shr(128, a), 0xffff)
                let r := sload(mappingSlot(programId, _rules.slot))
                // not halted | started | not ended
                if or(
                    and(shr(16, r), 0xff),
                    or(lt(timestamp(), and(shr(24, r), 0xffffffffff)), iszero(lt(timestamp(), and(shr(64, r), 0xffffffffff))))
                ) { break }
                // Local time in the program's offset (see Calendar.localTime).
                let local := add(timestamp(), mul(signextend(1, and(shr(104, r), 0xffff)), 60))
                let day := div(local, 86400)
                let hour := div(mod(local, 86400), 3600)
                let window := shr(add(184, mul(mod(add(day, 3), 7), 10)), r)
                if or(lt(hour, and(window, 31)), iszero(lt(hour, and(shr(5, window), 31)))) { break }
                let category := and(shr(120, b), 0xff)
                if iszero(and(shr(add(120, category), r), 1)) { break }
                let spendingSlot := mappingSlot(category, mappingSlot(payer, _spending.slot))
                let s := sload(spendingSlot)
                // Cached limits current: the cached period has not ended and the program version is unchanged.
                if or(
                    iszero(lt(timestamp(), and(shr(24, s), 0xffffffffff))), sub(and(shr(64, s), 0xffff), and(r, 0xffff))
                ) { break }
                let spent := add(and(shr(80, s), 0xffffffffffff), amount)
                // per-payment limit | category cap | evidence at or above the threshold
                if or(
                    or(gt(amount, and(shr(176, s), 0xffffffffff)), gt(spent, and(shr(128, s), 0xffffffffffff))),
                    and(iszero(evidenceHash), iszero(lt(amount, and(shr(216, s), 0xffffffffff))))
                ) { break }
                if receiptId {
                    let receiptSlot := mappingSlot(shr(8, receiptId), mappingSlot(vendor, _receipts.slot))
                    let bits := sload(receiptSlot)
                    // slither-disable-next-line incorrect-shift
                    let bit := shl(and(receiptId, 0xff), 1)
                    if and(bits, bit) { break }
                    sstore(receiptSlot, or(bits, bit))
                }
                // Effects: amount <= balance; vendor balance + amount <= totalSupply < 2^96; spent <= cap < 2^64.
                sstore(payerSlot, sub(a, amount))
                sstore(vendorSlot, add(b, amount))
                sstore(spendingSlot, add(s, shl(80, amount)))
                let m := mload(0x40)
                mstore(m, amount)
                log3(m, 0x20, transferTopic, payer, vendor)
                mstore(m, category)
                mstore(add(m, 0x20), and(s, 0xffffff))
                mstore(add(m, 0x40), amount)
                mstore(add(m, 0x60), receiptId)
                mstore(add(m, 0x80), evidenceHash)
                mstore(add(m, 0xa0), sub(and(shr(128, s), 0xffffffffffff), spent))
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
        uint256 category = uint8(b >> P.ACCOUNT_CATEGORY);
        unchecked {
            // amount <= payer balance (checked); vendor balance + amount <= totalSupply < 2^96;
            // spent + amount <= cap < 2^64, so no field overflows into its neighbour.
            _accounts[payer].store(a - amount);
            _accounts[vendor].store(b + amount);
            s += amount << P.SPENDING_SPENT;
        }
        _spending[payer][uint8(category)].store(s);
        if (receiptId != bytes32(0)) {
            _receipts[vendor][uint256(receiptId) >> 8] |= 1 << (uint256(receiptId) & 0xff);
        }
        // slither-disable-next-line unused-return
        (,, uint256 capLeft) = P.spentAndCap(s);
        uint256 programId = uint16(a >> P.ACCOUNT_PROGRAM);
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
        uint16 version = uint16(r);
        if (block.timestamp < uint40(s >> P.SPENDING_PERIOD_END) && uint16(s >> P.SPENDING_VERSION) == version) {
            return s;
        }
        // slither-disable-next-line incorrect-equality
        uint256 spent = uint24(s) == period ? uint48(s >> P.SPENDING_SPENT) : 0;
        CapOverride memory o = _capOverrides[spender][category];
        ProgramConfig memory c = _config[programId];
        uint256 cap = o.active ? o.cap : _categoryCaps[programId][category];
        uint256 end = Calendar.periodEnd(period, int16(uint16(r >> P.RULES_OFFSET)));
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
        uint16 programId = uint16(a >> P.ACCOUNT_PROGRAM);
        uint8 category = uint8(b >> P.ACCOUNT_CATEGORY);
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
        if (code == R.OVER_PAYMENT_LIMIT) revert PaymentLimitExceeded(programId, amount, uint40(s >> P.SPENDING_LIMIT));
        // slither-disable-next-line unused-return
        (,, uint256 capLeft) = P.spentAndCap(s);
        if (code == R.OVER_CATEGORY_CAP) revert CategoryCapExceeded(payer, category, uint32(period), amount, capLeft);
        if (code == R.EVIDENCE_REQUIRED) revert EvidenceRequired(amount, uint40(s >> P.SPENDING_THRESHOLD));
        if (code == R.RECEIPT_USED) revert ReceiptAlreadyUsed(vendor, receiptId);
        revert InsufficientBalance(payer, uint96(a), amount);
    }
}
