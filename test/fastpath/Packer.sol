// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IDepositTokenTypes} from "../../contracts/interfaces/IDepositTokenTypes.sol";

/// @notice Packs the token's one-slot records into raw words the way Solidity stores them, from the struct
/// declarations themselves (no field offsets are repeated in the tests).
contract Packer is IDepositTokenTypes {
    Account private _account;
    ProgramRules private _rulesRecord;
    Spending private _spendingRecord;

    function account(Account calldata x) external returns (uint256 w) {
        _account = x;
        assembly ("memory-safe") {
            w := sload(_account.slot)
        }
    }

    function rules(ProgramRules calldata x) external returns (uint256 w) {
        _rulesRecord = x;
        assembly ("memory-safe") {
            w := sload(_rulesRecord.slot)
        }
    }

    function spending(Spending calldata x) external returns (uint256 w) {
        _spendingRecord = x;
        assembly ("memory-safe") {
            w := sload(_spendingRecord.slot)
        }
    }
}
