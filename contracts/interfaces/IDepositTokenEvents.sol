// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title IDepositTokenEvents
/// @notice Everything an auditor needs is in these events (besides the ERC-20 `Transfer`/`Approval`): who did
/// what, under which program and rule version, and what was left afterwards.
interface IDepositTokenEvents {
    /// @notice A spender paid a vendor.
    /// @param period yyyymm in the program's time zone; `capLeft` is what remains of the category cap in it.
    event Payment(
        address indexed payer,
        address indexed vendor,
        uint16 indexed programId,
        uint8 category,
        uint32 period,
        uint256 amount,
        bytes32 receiptId,
        bytes32 evidenceHash,
        uint256 capLeft
    );
    /// @notice A payer's signed payment authorization was used (the Payment event follows).
    event AuthorizationUsed(address indexed payer, bytes32 indexed nonce);
    /// @notice A payer cancelled an unused payment authorization.
    event AuthorizationCanceled(address indexed payer, bytes32 indexed nonce);
    /// @notice The program's treasury allocated `amount` to a spender; `batchRef` is 0 for a single transfer.
    event Allocated(bytes32 indexed batchRef, uint16 indexed programId, address indexed spender, uint256 amount);
    /// @notice A batch allocation was applied (once, ever, for its reference).
    event AllocationBatch(
        bytes32 indexed batchRef, uint16 indexed programId, address indexed operator, uint256 count, uint256 total
    );
    /// @notice A spender returned tokens to its program's treasury.
    event Returned(address indexed spender, uint16 indexed programId, address indexed treasury, uint256 amount);
    /// @notice A vendor redeemed (burned) tokens; the bank pays `amount` out against the settlement reference
    /// `settlementReference` (as the vendor wrote it), whose `settlementRef` = keccak256(bytes(text)) is spent
    /// for this vendor: it can never be redeemed against again.
    event Redeemed(address indexed vendor, bytes32 indexed settlementRef, uint256 amount, string settlementReference);
    /// @notice Compliance moved a spender's tokens back to its program's treasury.
    event ClawedBack(
        address indexed spender, uint16 indexed programId, address indexed officer, uint256 amount, string reason
    );
    /// @notice An expired spender balance went back to its program's treasury.
    event Swept(address indexed spender, uint16 indexed programId, address indexed caller, uint256 amount);
    /// @notice An issuer minted into a treasury.
    event Minted(address indexed issuer, address indexed treasury, uint256 amount, uint256 allowanceLeft);
    /// @notice The admin set an issuer's mint allowance.
    event MintAllowanceSet(address indexed issuer, uint256 allowance);
    /// @notice A treasury account was registered.
    event TreasuryRegistered(address indexed treasury);
    /// @notice A vendor was registered or changed category.
    event VendorRegistered(address indexed vendor, uint8 indexed category, string name);
    /// @notice A vendor was suspended or reactivated.
    event VendorSuspensionChanged(address indexed vendor, bool suspended, address indexed officer, string reason);
    /// @notice A spender was enrolled in a program (or its department changed).
    event SpenderEnrolled(address indexed spender, uint16 indexed programId, bytes32 department);
    /// @notice A per-spender category cap override was set (`active`) or removed.
    event CapOverrideSet(address indexed spender, uint8 indexed category, uint48 cap, bool active);
    /// @notice A program was created or updated; `version` increases with every change.
    event ProgramConfigured(
        uint16 indexed programId,
        uint16 version,
        string name,
        address treasury,
        uint40 start,
        uint40 end,
        int16 utcOffsetMinutes,
        uint64 categories,
        uint72 openingHours,
        uint40 perPaymentLimit,
        uint40 evidenceThreshold
    );
    /// @notice The cap per period of one category in a program (type(uint48).max = no cap).
    event CategoryCapSet(uint16 indexed programId, uint8 indexed category, uint48 cap);
    /// @notice An account was frozen or unfrozen.
    event FreezeChanged(address indexed account, bool frozen, address indexed officer, string reason);
    /// @notice One program was paused or resumed (the token-wide pause is OpenZeppelin's Paused/Unpaused).
    event ProgramPauseChanged(uint16 indexed programId, bool paused, address indexed officer);
    /// @notice The whole token was paused.
    event Paused(address account);
    /// @notice The whole token was unpaused.
    event Unpaused(address account);
}
