// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IDepositTokenTypes
/// @notice Storage records of the deposit token. Each is packed into one 256-bit slot so that a payment reads
/// four records in the common case: payer, vendor, program rules and the payer's spending in the vendor's category
/// (plus the token-wide pause flag, DepositTokenBase._paused).
interface IDepositTokenTypes {
    /// @notice What a holder is; tokens move only along the paths between these kinds that the token allows.
    enum Kind {
        None,
        Treasury,
        Spender,
        Vendor
    }

    /// @notice A holder: balance and every flag a transfer checks, in one slot.
    struct Account {
        uint96 balance;
        Kind kind;
        bool frozen;
        bool suspended; // vendors only
        uint8 category; // vendors only: merchant category (1-63)
        uint16 programId; // spenders only
    }

    /// @notice The rules of a program that every payment checks, in one slot.
    /// @dev `openingHours` holds, for each weekday d (0 = Monday), the opening hour in bits [10d, 10d+5) and the
    /// closing hour (exclusive, up to 24) in bits [10d+5, 10d+10); a day with opening == closing is closed.
    /// `halted` is "this program paused on its own" (`setProgramPaused`), kept in the word a payment reads anyway;
    /// the token-wide pause is a separate flag (`paused()`) that every movement reads as well.
    struct ProgramRules {
        uint16 version;
        bool halted;
        uint40 start;
        uint40 end;
        int16 utcOffsetMinutes;
        uint64 categories;
        uint72 openingHours;
    }

    /// @notice The rest of a program, read only when a spender's cached limits are refreshed.
    struct ProgramConfig {
        address treasury;
        uint40 perPaymentLimit;
        uint40 evidenceThreshold;
    }

    /// @notice What one spender has spent in one category in one period, with the limits that apply, cached
    /// from the program at `version` so that later payments in the same period read nothing else.
    struct Spending {
        uint24 period; // yyyymm in the program's offset
        uint40 periodEnd; // first second (UTC) of the next period: before it, `period` is still current
        uint16 version; // program version the limits were read at; 0 = stale, re-read before use
        uint48 spent;
        uint48 cap;
        uint40 perPaymentLimit;
        uint40 evidenceThreshold;
    }

    /// @notice The full set of program parameters, as given to `createProgram` / `updateProgram`.
    struct ProgramParams {
        string name;
        address treasury;
        uint40 start;
        uint40 end;
        int16 utcOffsetMinutes;
        uint72 openingHours;
        uint40 perPaymentLimit;
        uint40 evidenceThreshold;
        uint8[] categories;
        uint48[] caps;
    }
}
