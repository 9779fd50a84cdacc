// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IDepositTokenErrors
/// @notice Every refusal of the deposit token has its own error naming the rule and the values that broke it.
interface IDepositTokenErrors {
    // --- movement rules (each matches an ERC-1404 restriction code) ---
    error TokenPaused();
    error ProgramHalted(uint16 programId);
    error NotRegistered(address account);
    error TransferPathNotAllowed(address from, uint8 fromKind, address to, uint8 toKind);
    error AccountFrozen(address account);
    error VendorIsSuspended(address vendor);
    error ProgramNotStarted(uint16 programId, uint40 start);
    error ProgramEnded(uint16 programId, uint40 end);
    error OutsideAllowedHours(uint16 programId, uint8 weekday, uint8 hour);
    error CategoryNotAllowed(uint16 programId, address vendor, uint8 category);
    error PaymentLimitExceeded(uint16 programId, uint256 amount, uint256 limit);
    error CategoryCapExceeded(address spender, uint8 category, uint32 period, uint256 amount, uint256 capLeft);
    error EvidenceRequired(uint256 amount, uint256 threshold);
    error ReceiptAlreadyUsed(address vendor, bytes32 receiptId);
    error InsufficientBalance(address account, uint256 balance, uint256 needed);
    error ZeroAmount();
    error NotProgramTreasury(uint16 programId, address account);
    /// @notice `transferFrom` asked for more than the caller's allowance (ERC-6093's error, same selector).
    error ERC20InsufficientAllowance(address spender, uint256 allowance, uint256 needed);

    // --- payment authorizations (EIP-3009 style, signed offline by the payer, submitted by the vendor) ---
    error CallerNotPayee(address caller, address vendor);
    error AuthorizationNotYetValid(uint256 validAfter);
    error AuthorizationExpired(uint256 validBefore);
    error AuthorizationAlreadyUsed(address payer, bytes32 nonce);
    error InvalidAuthorizationSigner(address signer, address payer);

    // --- administration ---
    error ZeroAddress();
    error AmountTooLarge(uint256 amount);
    error MintAllowanceExceeded(address issuer, uint256 allowance, uint256 amount);
    error AlreadyRegistered(address account, uint8 kind);
    error WrongKind(address account, uint8 expected, uint8 actual);
    error UnknownProgram(uint16 programId);
    error SpenderInOtherProgram(address spender, uint16 enrolledIn, uint16 requested);
    error InvalidCategory(uint8 category);
    error InvalidHours(uint8 weekday, uint8 opening, uint8 closing);
    error InvalidWindow(uint40 start, uint40 end);
    error InvalidUtcOffset(int16 utcOffsetMinutes);
    error InvalidEvidenceThreshold(uint256 threshold);
    error LengthMismatch(uint256 expected, uint256 actual);
    error EmptyBatch();
    error BatchAlreadyApplied(bytes32 batchRef);
    error MissingReference();
    error SettlementReferenceUsed(address vendor, bytes32 settlementRef);
    error ProgramNotEnded(uint16 programId, uint40 end);
    error TooManyPrograms();
    /// @notice The program's version (uint16) is at its maximum: another update would wrap it and could make a
    /// spending cache written at an old version look current again.
    error ProgramVersionExhausted(uint16 programId);
}
