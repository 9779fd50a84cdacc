// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

import {IDepositTokenErrors} from "../interfaces/IDepositTokenErrors.sol";
import {IDepositTokenEvents} from "../interfaces/IDepositTokenEvents.sol";
import {IDepositTokenTypes} from "../interfaces/IDepositTokenTypes.sol";
import {RECEIPT_WORD_SHIFT, RECEIPT_BIT_MASK} from "../libraries/PackedSlots.sol";

/// @title DepositTokenBase
/// @notice The storage and shared checks of the deposit token. Both the token (payments and ERC-20) and its
/// admin module (programs, participants, roles, compliance, issuance) inherit exactly this contract and declare
/// no sequential state of their own, so the module, reached by DELEGATECALL from the token's fallback, sees the
/// token's storage with the same layout. (The module's access control lives in OpenZeppelin's ERC-7201
/// namespaced storage, which the token never touches.) The split keeps each contract under the 24,576-byte code
/// limit that every EVM network enforces and keeps the token's function dispatch short for the payment path.
abstract contract DepositTokenBase is
    IDepositTokenTypes,
    IDepositTokenErrors,
    IDepositTokenEvents,
    EIP712,
    Nonces
{
    struct CapOverride {
        bool active;
        uint48 cap;
    }

    string internal _tokenName;
    string internal _symbol;
    // slither-disable-next-line uninitialized-state
    uint256 internal _totalSupply;
    // slither-disable-next-line uninitialized-state
    bool internal _paused;
    uint16 internal _programCount;

    mapping(address account => Account) internal _accounts;
    mapping(address owner => mapping(address spender => uint256)) internal _allowances;
    mapping(uint16 programId => ProgramRules) internal _rules;
    // slither-disable-next-line uninitialized-state
    mapping(uint16 programId => ProgramConfig) internal _config;
    mapping(uint16 programId => string) internal _programNames;
    mapping(uint16 programId => bool) internal _programPaused;
    // slither-disable-next-line uninitialized-state
    mapping(uint16 programId => mapping(uint8 category => uint48)) internal _categoryCaps;
    // slither-disable-next-line uninitialized-state
    mapping(address spender => mapping(uint8 category => CapOverride)) internal _capOverrides;
    mapping(address spender => mapping(uint8 category => Spending)) internal _spending;
    mapping(address spender => bytes32) internal _departments;
    // slither-disable-next-line uninitialized-state
    mapping(address vendor => mapping(uint256 word => uint256 bits)) internal _receipts;
    mapping(bytes32 batchRef => bool) internal _batchApplied;
    mapping(address issuer => uint256) internal _mintAllowances;
    mapping(address payer => mapping(bytes32 nonce => bool)) internal _authorizations;
    // Appended last: the slots above keep their positions.
    mapping(address vendor => mapping(bytes32 settlementRef => bool)) internal _settlementRefs;

    /// @dev EIP-712 type of a payment the payer signs offline and the vendor submits (`receiveWithAuthorization`).
    bytes32 internal constant PAYMENT_AUTHORIZATION_TYPEHASH = keccak256(
        "PaymentAuthorization(address payer,address vendor,uint256 amount,bytes32 receiptId,bytes32 evidenceHash,"
        "uint256 validAfter,uint256 validBefore,bytes32 nonce)"
    );
    /// @dev EIP-712 type of the cancellation of an unused authorization (`cancelAuthorization`).
    bytes32 internal constant CANCEL_AUTHORIZATION_TYPEHASH =
        keccak256("CancelAuthorization(address payer,bytes32 nonce)");

    function _receiptUsed(address vendor, bytes32 receiptId) internal view returns (bool) {
        return (_receipts[vendor][uint256(receiptId) >> RECEIPT_WORD_SHIFT] >> (uint256(receiptId) & RECEIPT_BIT_MASK)) & 1
            == 1;
    }

    /// @param name_ ERC-20 and EIP-712 name.
    constructor(string memory name_) EIP712(name_, "1") {}

    function _moveToTreasury(address spender, Account memory a, uint256 amount) internal {
        address treasury = _config[a.programId].treasury;
        Account memory t = _accounts[treasury];
        unchecked {
            a.balance -= uint96(amount);
            t.balance += uint96(amount);
        }
        _accounts[spender] = a;
        _accounts[treasury] = t;
        emit IERC20.Transfer(spender, treasury, amount);
    }

    function _approve(address owner, address spender, uint256 value) internal {
        if (spender == address(0)) revert ZeroAddress();
        _allowances[owner][spender] = value;
        emit IERC20.Approval(owner, spender, value);
    }

    function _requireNotPaused() internal view {
        if (_paused) revert TokenPaused();
    }

    function _requireProgram(uint16 programId) internal view returns (ProgramRules memory r) {
        r = _rules[programId];
        if (r.version == 0) revert UnknownProgram(programId);
    }

    function _requireKind(address account, Kind kind) internal view returns (Account memory a) {
        a = _accounts[account];
        if (a.kind != kind) revert WrongKind(account, uint8(kind), uint8(a.kind));
    }

    function _revertPaused(uint16 programId) internal view {
        if (_paused) revert TokenPaused();
        revert ProgramHalted(programId);
    }
}
