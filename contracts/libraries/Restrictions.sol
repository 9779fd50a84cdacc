// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Restrictions
/// @notice ERC-1404 restriction codes of the deposit token and their messages. The same codes drive the
/// pre-check views and enforcement, so a wallet's answer and the chain's verdict cannot drift apart.
library Restrictions {
    uint8 internal constant OK = 0;
    uint8 internal constant PAUSED = 1;
    uint8 internal constant SENDER_NOT_REGISTERED = 2;
    uint8 internal constant RECIPIENT_NOT_REGISTERED = 3;
    uint8 internal constant PATH_NOT_ALLOWED = 4;
    uint8 internal constant SENDER_FROZEN = 5;
    uint8 internal constant RECIPIENT_FROZEN = 6;
    uint8 internal constant VENDOR_SUSPENDED = 7;
    uint8 internal constant PROGRAM_NOT_STARTED = 8;
    uint8 internal constant PROGRAM_ENDED = 9;
    uint8 internal constant OUTSIDE_HOURS = 10;
    uint8 internal constant CATEGORY_NOT_ALLOWED = 11;
    uint8 internal constant OVER_PAYMENT_LIMIT = 12;
    uint8 internal constant OVER_CATEGORY_CAP = 13;
    uint8 internal constant EVIDENCE_REQUIRED = 14;
    uint8 internal constant RECEIPT_USED = 15;
    uint8 internal constant INSUFFICIENT_BALANCE = 16;
    uint8 internal constant ZERO_AMOUNT = 17;
    uint8 internal constant NOT_PROGRAM_TREASURY = 18;

    /// @notice The sentence for `code`.
    function message(uint8 code) internal pure returns (string memory) {
        if (code == OK) return "No restriction: the transfer is allowed.";
        if (code == PAUSED) return "The token or the spender's program is paused.";
        if (code == SENDER_NOT_REGISTERED) return "The sender is not a registered treasury, spender or vendor.";
        if (code == RECIPIENT_NOT_REGISTERED) return "The recipient is not a registered treasury, spender or vendor.";
        if (code == PATH_NOT_ALLOWED) return "Tokens cannot move between these kinds of account.";
        if (code == SENDER_FROZEN) return "The sender's wallet is frozen.";
        if (code == RECIPIENT_FROZEN) return "The recipient's wallet is frozen.";
        if (code == VENDOR_SUSPENDED) return "The vendor is suspended.";
        if (code == PROGRAM_NOT_STARTED) return "The spender's program has not started yet.";
        if (code == PROGRAM_ENDED) return "The spender's program has ended.";
        if (code == OUTSIDE_HOURS) return "Payments are not allowed at this hour in the program's time zone.";
        if (code == CATEGORY_NOT_ALLOWED) return "The program does not allow the vendor's merchant category.";
        if (code == OVER_PAYMENT_LIMIT) return "The amount is above the program's per-payment limit.";
        if (code == OVER_CATEGORY_CAP) return "The amount is above what is left of the category cap this period.";
        if (code == EVIDENCE_REQUIRED) return "A payment this large needs an evidence hash.";
        if (code == RECEIPT_USED) return "This receipt has already been paid to this vendor.";
        if (code == INSUFFICIENT_BALANCE) return "The sender's balance is too low.";
        if (code == ZERO_AMOUNT) return "The amount must be greater than zero.";
        if (code == NOT_PROGRAM_TREASURY) return "Only the spender's own program treasury can send to or receive from it.";
        return "Unknown restriction code.";
    }
}
