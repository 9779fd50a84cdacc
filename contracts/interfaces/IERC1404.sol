// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title ERC-1404: Simple Restricted Token Standard
/// @notice Lets a wallet ask, before sending, whether a transfer would be refused and why.
interface IERC1404 {
    /// @notice The restriction code a transfer of `value` from `from` to `to` would meet now (0 = none).
    /// @param from Sender.
    /// @param to Recipient.
    /// @param value Amount.
    function detectTransferRestriction(address from, address to, uint256 value) external view returns (uint8);

    /// @notice A human-readable sentence for a restriction code.
    /// @param restrictionCode A code returned by `detectTransferRestriction`.
    function messageForTransferRestriction(uint8 restrictionCode) external view returns (string memory);
}
