// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

uint256 constant SECONDS_PER_MINUTE = 60;
uint256 constant SECONDS_PER_HOUR = 3600;
uint256 constant SECONDS_PER_DAY = 86400;
uint256 constant DAYS_PER_WEEK = 7;
/// @dev 1970-01-01 was a Thursday: weekday 3 when Monday is 0.
uint256 constant EPOCH_WEEKDAY = 3;

/// @title Calendar
/// @notice Local calendar arithmetic for rules expressed in a program's fixed UTC offset (KST = +540 minutes,
/// no daylight saving): the spending period (a calendar month, as yyyymm), the weekday and the hour.
/// @dev Days-to-civil-date conversion follows Howard Hinnant's `civil_from_days`. Written in assembly because
/// every payment runs it: no overflow checks are needed for any timestamp after 1970 that fits in 40 bits.
library Calendar {
    /// @notice Splits a UTC timestamp into local period (yyyymm), weekday (0 = Monday) and hour (0-23).
    /// @param unixTime Seconds since the Unix epoch (UTC), after 1970-01-02.
    /// @param utcOffsetMinutes The local time zone's offset from UTC in minutes (-720 to +840).
    function localTime(uint256 unixTime, int256 utcOffsetMinutes)
        internal
        pure
        returns (uint256 period, uint256 weekday, uint256 hour)
    {
        assembly ("memory-safe") {
            let local := add(unixTime, mul(utcOffsetMinutes, SECONDS_PER_MINUTE))
            let day := div(local, SECONDS_PER_DAY)
            hour := div(mod(local, SECONDS_PER_DAY), SECONDS_PER_HOUR)
            weekday := mod(add(day, EPOCH_WEEKDAY), DAYS_PER_WEEK)
            let z := add(day, 719468)
            // slither-disable-next-line divide-before-multiply
            let era := div(z, 146097)
            let doe := sub(z, mul(era, 146097))
            // slither-disable-next-line divide-before-multiply
            let yoe := div(sub(add(sub(doe, div(doe, 1460)), div(doe, 36524)), div(doe, 146096)), 365)
            let doy := sub(doe, sub(add(mul(365, yoe), div(yoe, 4)), div(yoe, 100)))
            let mp := div(add(mul(5, doy), 2), 153)
            let month := sub(add(mp, 3), mul(12, gt(mp, 9)))
            let year := add(add(yoe, mul(era, 400)), lt(month, 3))
            period := add(mul(year, 100), month)
        }
    }

    /// @notice The first second (UTC) of the month after `period` (yyyymm) in a fixed UTC offset.
    /// @param period yyyymm.
    /// @param utcOffsetMinutes The local time zone's offset from UTC in minutes.
    function periodEnd(uint256 period, int256 utcOffsetMinutes) internal pure returns (uint256 end) {
        uint256 year = period / 100;
        uint256 month = period % 100 + 1;
        if (month == 13) {
            year += 1;
            month = 1;
        }
        // Howard Hinnant's days_from_civil for the 1st of (year, month).
        if (month <= 2) year -= 1;
        // slither-disable-next-line divide-before-multiply
        uint256 era = year / 400;
        uint256 yoe = year - era * 400;
        uint256 doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5;
        uint256 doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        uint256 day = era * 146097 + doe - 719468;
        return uint256(int256(day * SECONDS_PER_DAY) - utcOffsetMinutes * int256(SECONDS_PER_MINUTE));
    }
}
