// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title PlainERC20
/// @notice Test-only baseline: an unmodified OpenZeppelin ERC20, deployed beside the deposit token so the gas
/// benchmark compares against a standard transfer compiled with the same settings.
contract PlainERC20 is ERC20 {
    /// @notice Mints `supply` to the deployer.
    /// @param supply Initial supply.
    constructor(uint256 supply) ERC20("Plain", "PLN") {
        _mint(msg.sender, supply);
    }
}
