// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IDepositTokenTypes} from "../../contracts/interfaces/IDepositTokenTypes.sol";
import {Calendar} from "../../contracts/libraries/Calendar.sol";
import {CheatsBase, Vm, console} from "./Cheats.sol";
import {FastPathHarness} from "./FastPathHarness.sol";
import {Packer} from "./Packer.sol";

/// @title Differential test of PaymentEngine's assembly fast path against its Solidity rules.
/// @notice Each case writes raw storage words (payer and vendor accounts, the payer's program rules, the payer's
/// spending word in the vendor's category, the vendor's receipt word, and the word holding the token-wide pause
/// flag, which shares its slot with the program count) into a FastPathHarness, warps to a timestamp, then runs from the same snapshot (1) `_tryFastPayment` and (2) `_checkPayment` + `_executePayment`.
/// Asserted for every case:
///  A. fast path accepts => `_checkPayment` said OK (0) and the Solidity path succeeded;
///  B. fast path accepts => both wrote the same set of storage slots with the same final values, and emitted
///     the same logs (emitter, topics, data) - except the Payment event's `period` when the cached spending
///     word's period is not the calendar period now (see PERIOD below);
///  C. fast path declines => it wrote no storage slot and emitted no log;
///  D. `_executePayment` succeeds exactly when `_checkPayment` says OK;
///  E. fast path declines an allowed payment only when the spending cache is not current (period ended or
///     program version changed), i.e. it never sends a payment it could take to the slower path.
/// PERIOD: the fast path logs the period cached in the spending word, the Solidity path the calendar period
/// of `block.timestamp`. They agree whenever the cache was written at or before now under the same UTC offset
/// (timestamps never go back; an offset change bumps the version). Words built "reachable" satisfy this and are
/// compared in full; raw spending words need not, and for them only that one field is exempt, counted as
/// `period differs (unreachable word)`.
/// Words are biased towards valid-looking ones (see `_build`) so that the fast path accepts often; a share of
/// every field is replaced by the fuzzer's raw 256-bit value.
contract FastPathEquivalenceTest is CheatsBase, IDepositTokenTypes {
    FastPathHarness internal h;
    Packer internal packer;
    uint256 internal accountUsedBits;
    uint256 internal constant CHECK_REVERTED = 255; // bits a packed Account occupies (the rest of its word is unused)

    struct Rng {
        uint256 seed;
        uint256 n;
        bool clean; // skip every `_bad` choice
    }

    struct Case {
        address payer;
        address vendor;
        uint256 amount;
        bytes32 receiptId;
        bytes32 evidence;
        uint16 programId;
        uint8 category;
        bool reachableSpending;
    }

    struct Effects {
        bool ok;
        bytes32[] slots;
        bytes32[] values;
        Vm.Log[] logs;
    }

    struct Outcome {
        bool fastOk;
        uint256 code;
        bool cacheCurrent;
        bool periodDiffers;
        bool tokenPaused;
    }

    function setUp() public {
        h = new FastPathHarness();
        packer = new Packer();
        uint256 full = packer.account(Account(type(uint96).max, Kind.Vendor, true, true, 255, type(uint16).max));
        uint256 top = 0;
        while (top < 256 && full >> top != 0) top++;
        accountUsedBits = top;
    }

    /// @notice forge fuzz: see [profile.fastpath.fuzz] runs in foundry.toml.
    function testFuzz_fastPathEqualsCheckAndExecute(
        uint256 seed,
        uint256 rawA,
        uint256 rawB,
        uint256 rawR,
        uint256 rawS,
        uint256 rawAmount,
        uint256 rawTime,
        uint256 rawPaused
    ) public {
        _runCase(seed, [rawA, rawB, rawR, rawS, rawAmount, rawTime, rawPaused]);
    }

    /// @notice The same property over a fixed, seeded sequence of cases, with statistics (forge test -vv shows
    /// them); fails if the fast path accepts fewer than a quarter of the cases (the bias would have rotted).
    function test_seededCases_acceptanceRatio() public {
        uint256 cases = 3000;
        uint256 fastOk;
        uint256 allowedStale;
        uint256 periodDiffers;
        uint256 tokenPaused;
        uint256[32] memory declined;
        for (uint256 i = 0; i < cases; i++) {
            uint256 seed = uint256(keccak256(abi.encode("fast-path seeded case", i)));
            uint256[7] memory raw;
            for (uint256 j = 0; j < 7; j++) {
                raw[j] = uint256(keccak256(abi.encode(seed, "raw", j)));
            }
            // A call of its own per case: memory starts afresh (one loop would exhaust forge's memory limit).
            Outcome memory o = this.runCase(seed, raw);
            if (o.tokenPaused) tokenPaused++;
            if (o.fastOk) {
                fastOk++;
                if (o.periodDiffers) periodDiffers++;
            } else if (o.code == 0) {
                allowedStale++;
            } else {
                declined[o.code < 31 ? o.code : 31]++;
            }
        }
        console.log("cases", cases);
        console.log("fast path accepted (equal effects)", fastOk);
        console.log("allowed, cache stale (fast declined, Solidity path paid)", allowedStale);
        console.log("accepted with period differing (unreachable raw word)", periodDiffers);
        console.log("token paused (the fast path must decline)", tokenPaused);
        for (uint256 c = 1; c < 32; c++) {
            if (declined[c] == 0) continue;
            console.log(string.concat("declined, _checkPayment ", c == 31 ? "reverted" : string.concat("code ", _str(c))), declined[c]);
        }
        require(fastOk * 4 >= cases, "fast path accepted fewer than 25% of the seeded cases");
        require(allowedStale > 0, "no case exercised a stale cache");
        require(tokenPaused > 0, "no case exercised the token-wide pause");
    }

    /// @notice What a fallback to the Solidity path costs on a warm state: the gas of `_checkPayment` +
    /// `_executePayment` minus the fast path's, on the first seeded case the fast path accepts (storage warm in
    /// both measurements). A real payment that fell back would pay this difference plus the declined attempt
    /// (its reads and checks). tests/contracts/test_fast_path_gas.py bounds a warm payment at the benchmark
    /// + 2% (917 gas); this test fails if the Solidity path alone is no longer dearer than that margin, i.e. if
    /// the gas bound could stop telling the two paths apart.
    function test_gasOfFallbackOnWarmState() public {
        for (uint256 i = 0; i < 50; i++) {
            uint256 seed = uint256(keccak256(abi.encode("fast-path seeded case", i)));
            uint256[7] memory raw;
            Case memory c = _build(Rng(seed, 0, false), raw);
            uint256 snap = vm.snapshotState();
            uint256 g0 = gasleft();
            bool ok = h.fast(c.payer, c.vendor, c.amount, c.receiptId, c.evidence);
            uint256 fastGas = g0 - gasleft();
            vm.revertToState(snap);
            if (!ok) continue;
            g0 = gasleft();
            h.slow(c.payer, c.vendor, c.amount, c.receiptId, c.evidence);
            uint256 slowGas = g0 - gasleft();
            console.log("fast path gas", fastGas);
            console.log("Solidity path gas", slowGas);
            require(slowGas > fastGas + 917, "the Solidity path is within 917 gas (2% of a payment) of the fast path");
            return;
        }
        revert("no accepted case among the first 50 seeds");
    }

    function runCase(uint256 seed, uint256[7] memory raw) external returns (Outcome memory) {
        require(msg.sender == address(this));
        return _runCase(seed, raw);
    }

    // --- one case --------------------------------------------------------------------------------------------

    function _runCase(uint256 seed, uint256[7] memory raw) internal returns (Outcome memory o) {
        Case memory c = _build(Rng(seed, 0, false), raw);
        // `_checkPayment` itself can revert: refreshing a cache at a timestamp before 1970 in local time (a tiny
        // timestamp with a negative offset) overflows Calendar.periodEnd. Such a payment must not be accepted.
        try h.check(c.payer, c.vendor, c.amount, c.receiptId, c.evidence) returns (uint256 code, uint256, uint256) {
            o.code = code;
        } catch {
            o.code = CHECK_REVERTED;
        }
        Spending memory s = h.spendingOf(c.payer, c.category);
        o.cacheCurrent = block.timestamp < s.periodEnd && s.version == h.versionOf(c.programId);
        (uint256 periodNow,,) = Calendar.localTime(block.timestamp, h.offsetOf(c.programId));
        o.periodDiffers = uint256(s.period) != periodNow;
        o.tokenPaused = h.isPaused();

        uint256 snap = vm.snapshotState();
        Effects memory f = _effects(true, c);
        vm.revertToState(snap);
        Effects memory e = _effects(false, c);
        vm.revertToStateAndDelete(snap);
        o.fastOk = f.ok;

        require(e.ok == (o.code == 0), "D: _executePayment succeeded iff _checkPayment said OK");
        if (!f.ok) {
            require(f.slots.length == 0, "C: the fast path declined but wrote storage");
            require(f.logs.length == 0, "C: the fast path declined but emitted a log");
            if (o.code == 0) require(!o.cacheCurrent, "E: the fast path declined an allowed payment on a current cache");
            return o;
        }
        require(o.code == 0, "A: the fast path accepted a payment _checkPayment refuses");
        require(e.ok, "A: the fast path accepted a payment _executePayment reverts");
        require(f.slots.length == e.slots.length, "B: the paths wrote different numbers of slots");
        for (uint256 i = 0; i < f.slots.length; i++) {
            require(f.slots[i] == e.slots[i], "B: the paths wrote different slots");
            require(f.values[i] == e.values[i], "B: a slot's final value differs between the paths");
        }
        require(f.logs.length == e.logs.length, "B: the paths emitted different numbers of logs");
        for (uint256 i = 0; i < f.logs.length; i++) {
            Vm.Log memory x = f.logs[i];
            Vm.Log memory y = e.logs[i];
            require(x.emitter == y.emitter, "B: log emitter differs");
            require(keccak256(abi.encode(x.topics)) == keccak256(abi.encode(y.topics)), "B: log topics differ");
            if (keccak256(x.data) == keccak256(y.data)) continue;
            // Only the Payment event's period (second data word) may differ, and only for an unreachable word.
            require(c.reachableSpending == false && o.periodDiffers, "B: log data differs");
            require(x.data.length == y.data.length && x.data.length >= 64, "B: log data length differs");
            bytes memory xd = x.data;
            bytes memory yd = y.data;
            assembly ("memory-safe") {
                mstore(add(xd, 0x40), 0)
                mstore(add(yd, 0x40), 0)
            }
            require(keccak256(xd) == keccak256(yd), "B: log data differs beyond the period");
        }
    }

    function _effects(bool fastPath, Case memory c) internal returns (Effects memory e) {
        vm.record();
        vm.recordLogs();
        if (fastPath) {
            e.ok = h.fast(c.payer, c.vendor, c.amount, c.receiptId, c.evidence);
        } else {
            try h.slow(c.payer, c.vendor, c.amount, c.receiptId, c.evidence) {
                e.ok = true;
            } catch {
                e.ok = false;
            }
        }
        (, bytes32[] memory writes) = vm.accesses(address(h));
        e.logs = vm.getRecordedLogs();
        e.slots = _sortedUnique(writes);
        e.values = new bytes32[](e.slots.length);
        for (uint256 i = 0; i < e.slots.length; i++) {
            e.values[i] = vm.load(address(h), e.slots[i]);
        }
    }

    // --- building a case -------------------------------------------------------------------------------------
    // Half of the cases are "clean": every choice that would break a rule (`_bad`) is skipped, so the payment is
    // allowed unless a rarer combination breaks it; the other half break each rule with some probability.

    function _build(Rng memory g, uint256[7] memory raw) internal returns (Case memory c) {
        g.clean = _chance(g, 50);
        uint256 t = _time(g, raw[5]);
        vm.warp(t);
        c.payer = address(uint160(uint256(keccak256(abi.encode(_next(g) % 5, "payer")))));
        c.vendor = _bad(g, 3) ? c.payer : address(uint160(uint256(keccak256(abi.encode(_next(g) % 5, "vendor")))));

        // Accounts: payer (a spender) and vendor.
        uint256 a = _bad(g, 8) ? raw[0] : _account(g, true);
        uint256 b = _bad(g, 8) ? raw[1] : _account(g, false);
        vm.store(address(h), h.accountSlot(c.payer), bytes32(a));
        if (c.vendor != c.payer) vm.store(address(h), h.accountSlot(c.vendor), bytes32(b));
        c.programId = h.programOf(c.payer);
        c.category = h.categoryOf(c.vendor);

        // The payer's program: rules word, and what a cache refresh reads (config, category cap, override).
        uint256 r = _bad(g, 8) ? raw[2] : _rules(g, t, c.category);
        vm.store(address(h), h.rulesSlot(c.programId), bytes32(r));
        h.setConfig(
            c.programId,
            ProgramConfig(
                address(0), uint40(_chance(g, 80) ? _next(g) % 5_000_000 : _next(g)), uint40(_chance(g, 80) ? _next(g) % 5_000_000 : _next(g))
            )
        );
        h.setCategoryCap(c.programId, c.category, uint48(_chance(g, 80) ? _next(g) % 10_000_000 : _next(g)));
        if (_chance(g, 20)) h.setCapOverride(c.payer, c.category, _chance(g, 80), uint48(_next(g) % 10_000_000));

        // The payer's spending word in the vendor's category.
        c.reachableSpending = t > 80 days && t < 2 ** 40 && !_bad(g, 10);
        uint256 s = raw[3];
        if (c.reachableSpending) (s, c.reachableSpending) = _spending(g, t, c.programId);
        vm.store(address(h), h.spendingSlot(c.payer, c.category), bytes32(s));

        // Receipt, evidence, amount.
        if (!_chance(g, 30)) {
            c.receiptId = _chance(g, 50) ? bytes32(_next(g) % 5000) : bytes32(_next(g));
            if (_chance(g, 60)) {
                uint256 bits = _next(g);
                uint256 bit = 1 << (uint256(c.receiptId) & 0xff);
                bits = _bad(g, 30) ? bits | bit : bits & ~bit;
                vm.store(address(h), h.receiptSlot(c.vendor, c.receiptId), bytes32(bits));
            }
        }
        if (_chance(g, 50)) c.evidence = bytes32(_next(g) | 1);
        c.amount = _amount(g, c, raw[4]);

        // The word of the token-wide pause flag (drawn last, so the draws above are those of the cases before
        // the flag was added): the flag's byte set in a share of the cases, the other bytes of its slot (the
        // program count, unused bits) random, so that a fast path reading more than its byte is caught too.
        (bytes32 pausedSlot, uint256 byteOffset) = h.pausedSlot();
        uint256 flagBits = 0xff << (8 * byteOffset);
        uint256 w = _next(g) & ~flagBits;
        if (_bad(g, 6)) w |= (1 + _next(g) % 255) << (8 * byteOffset); // paused: any non-zero byte is `true`
        if (_bad(g, 3)) w = raw[6];
        vm.store(address(h), pausedSlot, bytes32(w));
    }

    function _time(Rng memory g, uint256 rawTime) internal pure returns (uint256) {
        if (_chance(g, 80)) return 1_704_067_200 + _next(g) % (16 * 365 days); // 2024-2039
        if (_chance(g, 50)) return rawTime % 2 ** 40;
        return rawTime % 2 ** 64;
    }

    function _account(Rng memory g, bool spender) internal returns (uint256 w) {
        Account memory x;
        x.balance = uint96(_chance(g, 60) ? _next(g) % 100_000_000 : _next(g));
        x.kind = _bad(g, 10) ? Kind(_next(g) % 4) : (spender ? Kind.Spender : Kind.Vendor);
        x.frozen = _bad(g, 6);
        x.suspended = spender ? _chance(g, 20) : _bad(g, 6);
        x.category = uint8(_bad(g, 10) ? _next(g) : 1 + _next(g) % 63);
        x.programId = uint16(_chance(g, 85) ? 1 + _next(g) % 3 : _next(g));
        w = packer.account(x);
        if (_chance(g, 10)) w |= _next(g) << accountUsedBits; // garbage in the unused high bits
    }

    function _rules(Rng memory g, uint256 t, uint8 category) internal returns (uint256) {
        ProgramRules memory x;
        x.version = uint16(_chance(g, 95) ? 1 + _next(g) % 65535 : 0);
        x.halted = _bad(g, 5);
        int16 offset = _chance(g, 70) ? int16(540) : _chance(g, 70) ? int16(int256(_next(g) % 1561) - 720) : int16(uint16(_next(g)));
        x.utcOffsetMinutes = offset;
        uint256 u = _next(g);
        x.start = uint40(_bad(g, 10) ? t + 1 + u % 1e6 : (_chance(g, 5) ? t : t - u % (t < 400 days ? t + 1 : 400 days)));
        u = _next(g);
        x.end = uint40(_bad(g, 10) ? (_chance(g, 50) ? t : t - u % (t + 1)) : t + 1 + u % 400 days);
        uint256 cats = _next(g) % 2 ** 64;
        if (category < 64) cats = _bad(g, 10) ? cats & ~(1 << category) : cats | (1 << category);
        x.categories = uint64(cats);
        (, uint256 weekday, uint256 hour) = Calendar.localTime(t, offset);
        uint256 hours_ = 0;
        bool closedNow = _bad(g, 12);
        for (uint256 d = 0; d < 7; d++) {
            uint256 open;
            uint256 close;
            if (d != weekday || !closedNow) {
                open = _chance(g, 10) ? hour : _next(g) % (hour + 1);
                close = _chance(g, 10) ? hour + 1 : hour + 1 + _next(g) % (32 - hour - 1);
            } else {
                open = _chance(g, 30) ? hour + 1 : _next(g) % 32;
                close = _chance(g, 30) ? hour : _next(g) % 32;
            }
            hours_ |= (open | close << 5) << (10 * d);
        }
        x.openingHours = uint72(hours_ | (_next(g) % 4) << 70);
        return packer.rules(x);
    }

    /// @return reachable Whether the word is one the token could hold at `t` (written at or before `t`, under the
    /// program's offset, period end computed), as opposed to a boundary or offset variant.
    function _spending(Rng memory g, uint256 t, uint16 programId) internal returns (uint256, bool reachable) {
        Spending memory x;
        int16 offset = h.offsetOf(programId);
        // Written at t0 <= t (timestamps never go back), under the program's offset (else the version changed);
        // clean cases write it now (so it is current).
        uint256 t0 = _bad(g, 30) ? t - _next(g) % (t < 70 days ? t : 70 days) : t;
        bool sameOffset = !_bad(g, 5);
        int16 o = sameOffset ? offset : int16(int256(_next(g) % 1561) - 720);
        uint16 version = h.versionOf(programId);
        x.version = sameOffset && !_bad(g, 8) ? version : uint16(_next(g));
        (uint256 period,,) = Calendar.localTime(t0, o);
        x.period = uint24(period);
        x.periodEnd = uint40(Calendar.periodEnd(period, o));
        reachable = sameOffset;
        if (_bad(g, 3)) {
            x.periodEnd = uint40(t + _next(g) % 2); // the boundary second
            reachable = false;
        }
        x.cap = uint48(_chance(g, 80) ? _next(g) % 10_000_000 : _next(g));
        x.spent = uint48(_bad(g, 10) ? _next(g) : _next(g) % (uint256(x.cap) + 1));
        x.perPaymentLimit = uint40(_chance(g, 80) ? _next(g) % 5_000_000 : _next(g));
        x.evidenceThreshold = uint40(_chance(g, 80) ? _next(g) % 5_000_000 : _next(g));
        return (packer.spending(x), reachable);
    }

    function _amount(Rng memory g, Case memory c, uint256 rawAmount) internal view returns (uint256) {
        if (_bad(g, 5)) return 0;
        if (_bad(g, 8)) return rawAmount;
        Spending memory s = h.spendingOf(c.payer, c.category);
        uint256 room = h.balanceOf(c.payer);
        if (s.perPaymentLimit < room) room = s.perPaymentLimit;
        uint256 capLeft = s.cap > s.spent ? s.cap - s.spent : 0;
        if (capLeft < room) room = capLeft;
        if (c.evidence == 0 && g.clean && s.evidenceThreshold > 0 && s.evidenceThreshold - 1 < room) {
            room = s.evidenceThreshold - 1;
        }
        if (_chance(g, 12)) return s.evidenceThreshold - (_chance(g, 50) || s.evidenceThreshold == 0 ? 0 : 1);
        if (_bad(g, 10)) return room + 1; // just over the tightest limit
        if (_chance(g, 10)) return room == 0 ? 1 : room; // exactly at it
        return 1 + _next(g) % (room == 0 ? 1 : room);
    }

    // --- helpers -----------------------------------------------------------------------------------------------

    function _next(Rng memory g) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(g.seed, g.n++)));
    }

    function _chance(Rng memory g, uint256 percent) internal pure returns (bool) {
        return _next(g) % 100 < percent;
    }

    /// @dev A choice that breaks a rule: never in a clean case.
    function _bad(Rng memory g, uint256 percent) internal pure returns (bool) {
        return _chance(g, g.clean ? 0 : percent);
    }

    function _sortedUnique(bytes32[] memory xs) internal pure returns (bytes32[] memory out) {
        for (uint256 i = 1; i < xs.length; i++) {
            bytes32 v = xs[i];
            uint256 j = i;
            while (j > 0 && xs[j - 1] > v) {
                xs[j] = xs[j - 1];
                j--;
            }
            xs[j] = v;
        }
        uint256 n = 0;
        for (uint256 i = 0; i < xs.length; i++) {
            if (i == 0 || xs[i] != xs[i - 1]) xs[n++] = xs[i];
        }
        out = new bytes32[](n);
        for (uint256 i = 0; i < n; i++) {
            out[i] = xs[i];
        }
    }

    function _str(uint256 v) internal pure returns (string memory) {
        if (v == 0) return "0";
        bytes memory b;
        while (v != 0) {
            b = abi.encodePacked(bytes1(uint8(48 + v % 10)), b);
            v /= 10;
        }
        return string(b);
    }
}
