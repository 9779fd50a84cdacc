// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {Multicall} from "@openzeppelin/contracts/utils/Multicall.sol";

import {IERC1404} from "../interfaces/IERC1404.sol";
import {Calendar} from "../libraries/Calendar.sol";
import {Restrictions} from "../libraries/Restrictions.sol";
import {PackedSlots, ACCOUNT_KIND, ACCOUNT_KIND_MASK} from "../libraries/PackedSlots.sol";
import {DepositTokenBase} from "./DepositTokenBase.sol";
import {DepositTokenAdmin} from "./DepositTokenAdmin.sol";
import {PaymentEngine} from "./PaymentEngine.sol";

/// @title DepositToken
/// @notice A restricted deposit token for public spending (1 token = 1 KRW, 0 decimals). Tokens move only along
/// the paths of the programme: an issuer mints into a treasury; a program's treasury allocates to enrolled
/// spenders; spenders pay registered vendors under the program's rules (categories, per-payment limit,
/// category caps per calendar month, hours per weekday, validity window, evidence above a threshold, one
/// payment per receipt); vendors redeem; spenders return; compliance claws back; anyone sweeps an expired
/// balance back to its treasury. Every other movement reverts with a custom error naming the rule.
/// @dev This contract holds the ERC-20 surface and the payment path; programs, participants, issuance and
/// compliance live in DepositTokenAdmin, reached through the fallback by DELEGATECALL on this storage. Clients
/// use the union of both ABIs at this address. A payment reads five storage slots (the token-wide pause flag,
/// payer, vendor, program rules, spending cache) and writes three; see IDepositTokenTypes for the packing.
contract DepositToken is PaymentEngine, IERC20Metadata, IERC1404, Multicall {
    using PackedSlots for Account;
    using PackedSlots for ProgramRules;

    /// @notice The admin module every call this contract does not implement is delegated to.
    address public immutable ADMIN_MODULE;

    /// @notice The admin module was built for another token name (its EIP-712 domain would not match).
    error AdminModuleMismatch(address module);

    /// @param name_ ERC-20 and EIP-712 name.
    /// @param symbol_ ERC-20 symbol.
    /// @param admin The first admin (two-step handover, see AccessControlDefaultAdminRules).
    /// @param adminTransferDelay Seconds a new admin must wait before accepting.
    /// @param adminModule A DepositTokenAdmin deployed with the same name.
    constructor(
        string memory name_,
        string memory symbol_,
        address admin,
        uint48 adminTransferDelay,
        address adminModule
    ) DepositTokenBase(name_) {
        if (adminModule.code.length == 0) revert AdminModuleMismatch(adminModule);
        // slither-disable-next-line unused-return
        (, string memory moduleName,,,,,) = EIP712(adminModule).eip712Domain();
        if (keccak256(bytes(moduleName)) != keccak256(bytes(name_))) revert AdminModuleMismatch(adminModule);
        ADMIN_MODULE = adminModule;
        _tokenName = name_;
        _symbol = symbol_;
        // slither-disable-next-line controlled-delegatecall
        (bool ok, bytes memory reason) =
            adminModule.delegatecall(abi.encodeCall(DepositTokenAdmin.initialize, (admin, adminTransferDelay)));
        if (!ok) {
            assembly ("memory-safe") {
                revert(add(reason, 32), mload(reason))
            }
        }
    }

    /// @notice Delegates every other function (administration, compliance, issuance, allocation, permit) to
    /// the admin module, which runs on this contract's storage.
    fallback() external {
        address module = ADMIN_MODULE;
        assembly ("memory-safe") {
            calldatacopy(0, 0, calldatasize())
            let ok := delegatecall(gas(), module, 0, calldatasize(), 0, 0)
            returndatacopy(0, 0, returndatasize())
            if iszero(ok) { revert(0, returndatasize()) }
            return(0, returndatasize())
        }
    }

    /// @notice The token's name.
    function name() external view returns (string memory) {
        return _tokenName;
    }

    /// @notice The token's symbol.
    function symbol() external view returns (string memory) {
        return _symbol;
    }

    /// @notice 0: one token is one won.
    function decimals() external pure returns (uint8) {
        return 0;
    }

    /// @notice Tokens in existence.
    function totalSupply() external view returns (uint256) {
        return _totalSupply;
    }

    /// @notice The balance of `account`.
    /// @param account Any address.
    function balanceOf(address account) external view returns (uint256) {
        return _accounts[account].balance;
    }

    /// @notice The remaining allowance `owner` gave `spender`.
    /// @param owner Holder.
    /// @param spender Approved address.
    function allowance(address owner, address spender) external view returns (uint256) {
        return _allowances[owner][spender];
    }

    /// @notice Approves `spender` to move `value` of the caller's tokens (along allowed paths only).
    /// @param spender Approved address.
    /// @param value Allowance; type(uint256).max is never decreased.
    function approve(address spender, uint256 value) external returns (bool) {
        _approve(msg.sender, spender, value);
        return true;
    }

    /// @notice Moves tokens along an allowed path: spender to vendor (a payment without receipt), spender to
    /// its program's treasury (a return), a program's treasury to its spender (an allocation).
    /// @param to Recipient.
    /// @param value Amount.
    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    /// @notice `transfer` on behalf of `from`, spending the caller's allowance.
    /// @param from Holder.
    /// @param to Recipient.
    /// @param value Amount.
    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 current = _allowances[from][msg.sender];
        if (current != type(uint256).max) {
            if (current < value) revert ERC20InsufficientAllowance(msg.sender, current, value);
            unchecked {
                _approve(from, msg.sender, current - value);
            }
        }
        _transfer(from, to, value);
        return true;
    }

    /// @notice Pays a vendor under the caller's program rules.
    /// @param vendor A registered vendor.
    /// @param amount Amount in KRW.
    /// @param receiptId The vendor's invoice id; non-zero ids can be paid once per vendor, ever (0 = none).
    /// Sequential invoice numbers are cheapest: 256 consecutive ids share one storage word.
    /// @param evidenceHash Hash of the off-chain evidence document; required at or above the program's threshold.
    function pay(address vendor, uint256 amount, bytes32 receiptId, bytes32 evidenceHash) external {
        if (_tryFastPayment(msg.sender, vendor, amount, receiptId, evidenceHash)) return;
        uint256 a = _accounts[msg.sender].word();
        uint256 b = _accounts[vendor].word();
        if (_kind(a) != Kind.Spender || _kind(b) != Kind.Vendor) _revertPath(msg.sender, vendor);
        _executePayment(msg.sender, a, vendor, b, amount, receiptId, evidenceHash);
    }

    /// @notice The vendor collects a payment the payer authorized by signature (EIP-712 `PaymentAuthorization`),
    /// in the manner of EIP-3009 `receiveWithAuthorization`: only the vendor named in it can submit it, so it
    /// cannot be front-run, and each random `nonce` works once. The payer needs no gas; the same rules apply
    /// and the same events are emitted as for `pay`, preceded by `AuthorizationUsed`.
    /// @param payer The spender who signed.
    /// @param vendor The vendor paid; must be the caller.
    /// @param amount Amount in KRW.
    /// @param receiptId The vendor's invoice id (0 = none).
    /// @param evidenceHash Evidence hash (0 = none).
    /// @param validAfter The authorization is valid strictly after this unix time.
    /// @param validBefore ... and strictly before this one.
    /// @param nonce A random 32-byte value chosen by the payer.
    /// @param v Signature v.
    /// @param r Signature r.
    /// @param s Signature s.
    function receiveWithAuthorization(
        address payer,
        address vendor,
        uint256 amount,
        bytes32 receiptId,
        bytes32 evidenceHash,
        uint256 validAfter,
        uint256 validBefore,
        bytes32 nonce,
        uint8 v,
        bytes32 r,
        bytes32 s
    ) external {
        if (msg.sender != vendor) revert CallerNotPayee(msg.sender, vendor);
        if (block.timestamp <= validAfter) revert AuthorizationNotYetValid(validAfter);
        if (block.timestamp >= validBefore) revert AuthorizationExpired(validBefore);
        if (_authorizations[payer][nonce]) revert AuthorizationAlreadyUsed(payer, nonce);
        bytes32 structHash = keccak256(
            abi.encode(
                PAYMENT_AUTHORIZATION_TYPEHASH,
                payer,
                vendor,
                amount,
                receiptId,
                evidenceHash,
                validAfter,
                validBefore,
                nonce
            )
        );
        address signer = ECDSA.recover(_hashTypedDataV4(structHash), v, r, s);
        if (signer != payer) revert InvalidAuthorizationSigner(signer, payer);
        _authorizations[payer][nonce] = true;
        emit AuthorizationUsed(payer, nonce);
        if (_tryFastPayment(payer, vendor, amount, receiptId, evidenceHash)) return;
        uint256 a = _accounts[payer].word();
        uint256 b = _accounts[vendor].word();
        if (_kind(a) != Kind.Spender || _kind(b) != Kind.Vendor) _revertPath(payer, vendor);
        _executePayment(payer, a, vendor, b, amount, receiptId, evidenceHash);
    }

    /// @notice The restriction code `pay(vendor, amount, receiptId, evidenceHash)` from `payer` would meet now
    /// (0 = it would succeed); `messageForTransferRestriction` turns it into a sentence.
    /// @param payer The paying spender.
    /// @param vendor The vendor.
    /// @param amount Amount.
    /// @param receiptId Receipt id (0 = none).
    /// @param evidenceHash Evidence hash (0 = none).
    function detectPaymentRestriction(
        address payer,
        address vendor,
        uint256 amount,
        bytes32 receiptId,
        bytes32 evidenceHash
    ) external view returns (uint8) {
        uint256 a = _accounts[payer].word();
        uint256 b = _accounts[vendor].word();
        if (_kind(a) != Kind.Spender || _kind(b) != Kind.Vendor) {
            uint8 pathCode = _pathCode(payer, _accounts[payer], vendor, _accounts[vendor]);
            return pathCode == Restrictions.OK ? Restrictions.PATH_NOT_ALLOWED : pathCode;
        }
        (uint256 code,,) = _checkPayment(payer, a, vendor, b, amount, receiptId, evidenceHash);
        return uint8(code);
    }

    /// @inheritdoc IERC1404
    function detectTransferRestriction(address from, address to, uint256 value) external view returns (uint8) {
        return _checkTransfer(from, _accounts[from], to, _accounts[to], value);
    }

    /// @inheritdoc IERC1404
    function messageForTransferRestriction(uint8 restrictionCode) external pure returns (string memory) {
        return Restrictions.message(restrictionCode);
    }

    /// @notice What `spender` has spent and may still spend in `category` in the current period.
    /// @param spender An enrolled spender.
    /// @param category A merchant category.
    /// @return period yyyymm now, in the program's time zone.
    /// @return spent Spent in this period.
    /// @return cap The cap that applies to the spender in this period (NO_CAP = none).
    function spendingThisPeriod(address spender, uint8 category)
        external
        view
        returns (uint32 period, uint256 spent, uint256 cap)
    {
        Account memory a = _accounts[spender];
        if (a.kind != Kind.Spender) revert WrongKind(spender, uint8(Kind.Spender), uint8(a.kind));
        ProgramRules memory r = _rules[a.programId];
        // slither-disable-next-line unused-return
        (uint256 localPeriod,,) = Calendar.localTime(block.timestamp, r.utcOffsetMinutes);
        period = uint32(localPeriod);
        // slither-disable-next-line unused-return
        (spent, cap,) =
            PackedSlots.spentAndCap(_currentSpending(spender, a.programId, category, _rules[a.programId].word(), period));
    }

    /// @notice The caller (a spender) returns `amount` to its program's treasury.
    /// @param amount Amount.
    function returnToTreasury(uint256 amount) external {
        Account memory a = _accounts[msg.sender];
        if (a.kind != Kind.Spender) revert WrongKind(msg.sender, uint8(Kind.Spender), uint8(a.kind));
        _transfer(msg.sender, _config[a.programId].treasury, amount);
    }

    // ------------------------------------------------------------------------------------------------------
    // Internals
    // ------------------------------------------------------------------------------------------------------

    function _kind(uint256 accountWord) private pure returns (Kind) {
        return Kind(uint8((accountWord >> ACCOUNT_KIND) & ACCOUNT_KIND_MASK));
    }

    /// @dev Routes a plain ERC-20 movement: spender to vendor is a payment (no receipt, no evidence);
    /// spender to its treasury a return; treasury to its spender an allocation; anything else reverts.
    function _transfer(address from, address to, uint256 amount) private {
        if (_tryFastPayment(from, to, amount, bytes32(0), bytes32(0))) return;
        uint256 aw = _accounts[from].word();
        uint256 bw = _accounts[to].word();
        if (_kind(aw) == Kind.Spender && _kind(bw) == Kind.Vendor) {
            _executePayment(from, aw, to, bw, amount, bytes32(0), bytes32(0));
            return;
        }
        Account memory a = _accounts[from];
        Account memory b = _accounts[to];
        uint8 code = _checkTransfer(from, a, to, b, amount);
        if (code != Restrictions.OK) _revertTransfer(code, from, a, to, b, amount);
        unchecked {
            a.balance -= uint96(amount);
            b.balance += uint96(amount);
        }
        _accounts[from] = a;
        _accounts[to] = b;
        emit Transfer(from, to, amount);
        if (a.kind == Kind.Spender) emit Returned(from, a.programId, to, amount);
        else emit Allocated(bytes32(0), b.programId, to, amount);
    }

    /// @dev Checks common to every path: registration, the allowed kind-to-kind paths, the program's treasury.
    function _pathCode(address from, Account memory a, address to, Account memory b) private view returns (uint8) {
        if (a.kind == Kind.None) return Restrictions.SENDER_NOT_REGISTERED;
        if (b.kind == Kind.None) return Restrictions.RECIPIENT_NOT_REGISTERED;
        bool allowed = (a.kind == Kind.Spender && (b.kind == Kind.Vendor || b.kind == Kind.Treasury))
            || (a.kind == Kind.Treasury && b.kind == Kind.Spender);
        if (!allowed) return Restrictions.PATH_NOT_ALLOWED;
        if (a.kind == Kind.Treasury && _config[b.programId].treasury != from) {
            return Restrictions.NOT_PROGRAM_TREASURY;
        }
        if (b.kind == Kind.Treasury && _config[a.programId].treasury != to) {
            return Restrictions.NOT_PROGRAM_TREASURY;
        }
        return Restrictions.OK;
    }

    function _checkTransfer(address from, Account memory a, address to, Account memory b, uint256 amount)
        private
        view
        returns (uint8 code)
    {
        code = _pathCode(from, a, to, b);
        if (code != Restrictions.OK) return code;
        if (a.kind == Kind.Spender && b.kind == Kind.Vendor) {
            (uint256 paymentCode,,) =
                _checkPayment(from, _accounts[from].word(), to, _accounts[to].word(), amount, bytes32(0), bytes32(0));
            return uint8(paymentCode);
        }
        // A return (spender -> treasury) or a single allocation (treasury -> spender).
        uint16 programId = a.kind == Kind.Spender ? a.programId : b.programId;
        ProgramRules memory r = _rules[programId];
        if (amount == 0) return Restrictions.ZERO_AMOUNT;
        if (_paused || r.halted) return Restrictions.PAUSED;
        if (a.frozen) return Restrictions.SENDER_FROZEN;
        if (b.frozen) return Restrictions.RECIPIENT_FROZEN;
        if (amount > a.balance) return Restrictions.INSUFFICIENT_BALANCE;
        if (a.kind == Kind.Treasury && block.timestamp >= r.end) return Restrictions.PROGRAM_ENDED;
        return Restrictions.OK;
    }

    function _revertPath(address from, address to) private view {
        Account memory a = _accounts[from];
        Account memory b = _accounts[to];
        uint8 code = _pathCode(from, a, to, b);
        _revertTransfer(code == Restrictions.OK ? Restrictions.PATH_NOT_ALLOWED : code, from, a, to, b, 0);
    }

    // slither-disable-next-line incorrect-equality
    function _revertTransfer(uint8 code, address from, Account memory a, address to, Account memory b, uint256 amount)
        private
        view
    {
        if (code == Restrictions.SENDER_NOT_REGISTERED) revert NotRegistered(from);
        if (code == Restrictions.RECIPIENT_NOT_REGISTERED) revert NotRegistered(to);
        if (code == Restrictions.PATH_NOT_ALLOWED) {
            revert TransferPathNotAllowed(from, uint8(a.kind), to, uint8(b.kind));
        }
        if (code == Restrictions.NOT_PROGRAM_TREASURY) {
            (uint16 programId, address other) = a.kind == Kind.Treasury ? (b.programId, from) : (a.programId, to);
            revert NotProgramTreasury(programId, other);
        }
        if (a.kind == Kind.Spender && b.kind == Kind.Vendor) {
            _revertPayment(code, from, _accounts[from].word(), to, _accounts[to].word(), amount, bytes32(0));
        }
        uint16 pid = a.kind == Kind.Spender ? a.programId : b.programId;
        if (code == Restrictions.ZERO_AMOUNT) revert ZeroAmount();
        if (code == Restrictions.PAUSED) _revertPaused(pid);
        if (code == Restrictions.SENDER_FROZEN) revert AccountFrozen(from);
        if (code == Restrictions.RECIPIENT_FROZEN) revert AccountFrozen(to);
        if (code == Restrictions.INSUFFICIENT_BALANCE) revert InsufficientBalance(from, a.balance, amount);
        revert ProgramEnded(pid, _rules[pid].end);
    }

}
