// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {AccessControlDefaultAdminRulesUpgradeable} from
    "@openzeppelin/contracts-upgradeable/access/extensions/AccessControlDefaultAdminRulesUpgradeable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {Nonces} from "@openzeppelin/contracts/utils/Nonces.sol";

import {IERC1404} from "../interfaces/IERC1404.sol";
import {HOURS_DAY_BITS, HOURS_CLOSING, HOURS_FIELD_MASK, HOURS_DAYS} from "../libraries/PackedSlots.sol";
import {DepositTokenBase} from "./DepositTokenBase.sol";

/// @title DepositTokenAdmin
/// @notice Programs, participants, issuance, allocation, redemption, sweep and compliance of the deposit token.
/// @dev Runs only by DELEGATECALL from DepositToken, on the token's storage (see DepositTokenBase). Its own
/// storage is inert: the constructor disables `initialize`, so no role can ever be held here directly.
contract DepositTokenAdmin is DepositTokenBase, AccessControlDefaultAdminRulesUpgradeable, IERC20Permit {
    /// @notice Mints into treasuries within an allowance the admin sets (the issuing bank).
    bytes32 public constant ISSUER_ROLE = keccak256("ISSUER_ROLE");
    /// @notice Creates and updates programs, enrols spenders, allocates (the budget office).
    bytes32 public constant PROGRAM_MANAGER_ROLE = keccak256("PROGRAM_MANAGER_ROLE");
    /// @notice Registers vendors and sets their merchant category.
    bytes32 public constant VENDOR_REGISTRAR_ROLE = keccak256("VENDOR_REGISTRAR_ROLE");
    /// @notice Pauses, freezes, claws back and suspends vendors.
    bytes32 public constant COMPLIANCE_ROLE = keccak256("COMPLIANCE_ROLE");
    /// @notice A category cap meaning "no cap".
    uint48 public constant NO_CAP = type(uint48).max;
    /// @notice The highest merchant category code (categories are bits of a uint64 mask; 0 is unused).
    uint8 public constant MAX_CATEGORY = 63;

    bytes32 private constant PERMIT_TYPEHASH =
        keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)");

    /// @notice EIP-2612: the permit's deadline has passed.
    error ERC2612ExpiredSignature(uint256 deadline);
    /// @notice EIP-2612: the permit was not signed by the owner.
    error ERC2612InvalidSigner(address signer, address owner);

    /// @param name_ The token's name (its EIP-712 domain name).
    constructor(string memory name_) DepositTokenBase(name_) {
        _disableInitializers();
    }

    /// @notice The account record of `account` (balance, kind, flags, category, program).
    /// @param account Any address.
    function accountOf(address account) external view returns (Account memory) {
        return _accounts[account];
    }

    /// @notice The raw spending record of a spender in a category (as of the last period it paid in).
    /// @param spender A spender.
    /// @param category Merchant category.
    function spendingOf(address spender, uint8 category) external view returns (Spending memory) {
        return _spending[spender][category];
    }

    /// @notice Whether `vendor` has been paid against `receiptId`.
    /// @param vendor Vendor.
    /// @param receiptId Receipt id.
    function receiptUsed(address vendor, bytes32 receiptId) external view returns (bool) {
        return _receiptUsed(vendor, receiptId);
    }

    /// @notice Sets the first admin; the token's constructor calls it once, by DELEGATECALL, on its storage.
    /// @param admin The first admin (handover is two-step, see AccessControlDefaultAdminRules).
    /// @param adminTransferDelay Seconds a new admin must wait before accepting the role.
    function initialize(address admin, uint48 adminTransferDelay) external initializer {
        __AccessControlDefaultAdminRules_init(adminTransferDelay, admin);
    }

    /// @notice ERC-165: ERC-20, ERC-1404 and AccessControl.
    /// @param interfaceId Interface id.
    function supportsInterface(bytes4 interfaceId) public view override returns (bool) {
        return interfaceId == type(IERC20).interfaceId || interfaceId == type(IERC1404).interfaceId
            || super.supportsInterface(interfaceId);
    }

    /// @notice EIP-2612 nonce of `owner`.
    /// @param owner Holder.
    function nonces(address owner) public view override(IERC20Permit, Nonces) returns (uint256) {
        return super.nonces(owner);
    }

    /// @notice EIP-2612: approve by the holder's signature.
    /// @param owner Holder who signed.
    /// @param spender Approved address.
    /// @param value Allowance.
    /// @param deadline Signature expiry (unix seconds).
    /// @param v Signature v.
    /// @param r Signature r.
    /// @param s Signature s.
    function permit(address owner, address spender, uint256 value, uint256 deadline, uint8 v, bytes32 r, bytes32 s)
        external
    {
        if (block.timestamp > deadline) revert ERC2612ExpiredSignature(deadline);
        bytes32 structHash = keccak256(abi.encode(PERMIT_TYPEHASH, owner, spender, value, _useNonce(owner), deadline));
        address signer = ECDSA.recover(_hashTypedDataV4(structHash), v, r, s);
        if (signer != owner) revert ERC2612InvalidSigner(signer, owner);
        _approve(owner, spender, value);
    }

    /// @notice Cancels an unused payment authorization (EIP-3009 style): the payer signs
    /// `CancelAuthorization(payer, nonce)`; anyone may submit it.
    /// @param payer The spender who signed the authorization.
    /// @param nonce Its nonce.
    /// @param v Signature v.
    /// @param r Signature r.
    /// @param s Signature s.
    function cancelAuthorization(address payer, bytes32 nonce, uint8 v, bytes32 r, bytes32 s) external {
        if (_authorizations[payer][nonce]) revert AuthorizationAlreadyUsed(payer, nonce);
        bytes32 structHash = keccak256(abi.encode(CANCEL_AUTHORIZATION_TYPEHASH, payer, nonce));
        address signer = ECDSA.recover(_hashTypedDataV4(structHash), v, r, s);
        if (signer != payer) revert InvalidAuthorizationSigner(signer, payer);
        _authorizations[payer][nonce] = true;
        emit AuthorizationCanceled(payer, nonce);
    }

    /// @notice Whether a payer's authorization nonce has been used or cancelled.
    /// @param payer The payer.
    /// @param nonce The nonce.
    function authorizationState(address payer, bytes32 nonce) external view returns (bool) {
        return _authorizations[payer][nonce];
    }

    /// @notice EIP-712 domain separator of the token (its address, this chain).
    // solhint-disable-next-line func-name-mixedcase
    function DOMAIN_SEPARATOR() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @notice Sets how much `issuer` may still mint (like Circle's minter allowance).
    /// @param issuer An account holding ISSUER_ROLE.
    /// @param allowance_ The new remaining allowance.
    function setMintAllowance(address issuer, uint256 allowance_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        _mintAllowances[issuer] = allowance_;
        emit MintAllowanceSet(issuer, allowance_);
    }

    /// @notice Mints `amount` into a registered treasury against the treasury's deposit at the bank.
    /// @param treasury A registered treasury.
    /// @param amount Amount in KRW.
    function mint(address treasury, uint256 amount) external onlyRole(ISSUER_ROLE) {
        _requireNotPaused();
        if (amount == 0) revert ZeroAmount();
        uint256 left = _mintAllowances[msg.sender];
        if (amount > left) revert MintAllowanceExceeded(msg.sender, left, amount);
        Account memory t = _requireKind(treasury, Kind.Treasury);
        if (t.frozen) revert AccountFrozen(treasury);
        uint256 supply = _totalSupply + amount;
        if (supply > type(uint96).max) revert AmountTooLarge(amount);
        unchecked {
            left -= amount;
            t.balance += uint96(amount);
        }
        _mintAllowances[msg.sender] = left;
        _totalSupply = supply;
        _accounts[treasury] = t;
        emit IERC20.Transfer(address(0), treasury, amount);
        emit Minted(msg.sender, treasury, amount, left);
    }

    /// @notice What `issuer` may still mint.
    /// @param issuer Issuer.
    function mintAllowance(address issuer) external view returns (uint256) {
        return _mintAllowances[issuer];
    }

    /// @notice Registers a treasury account (a budget office's wallet that programs draw from).
    /// @param treasury The account.
    function registerTreasury(address treasury) external onlyRole(DEFAULT_ADMIN_ROLE) {
        Account memory a = _accounts[treasury];
        if (treasury == address(0)) revert ZeroAddress();
        if (a.kind != Kind.None) revert AlreadyRegistered(treasury, uint8(a.kind));
        a.kind = Kind.Treasury;
        _accounts[treasury] = a;
        emit TreasuryRegistered(treasury);
    }

    /// @notice Registers a vendor in a merchant category, or moves a registered vendor to another category.
    /// @param vendor The vendor's account.
    /// @param category Merchant category (1-63).
    /// @param vendorName Business name, for auditors.
    function registerVendor(address vendor, uint8 category, string calldata vendorName)
        external
        onlyRole(VENDOR_REGISTRAR_ROLE)
    {
        if (vendor == address(0)) revert ZeroAddress();
        _requireCategory(category);
        Account memory a = _accounts[vendor];
        if (a.kind != Kind.None && a.kind != Kind.Vendor) revert AlreadyRegistered(vendor, uint8(a.kind));
        a.kind = Kind.Vendor;
        a.category = category;
        _accounts[vendor] = a;
        emit VendorRegistered(vendor, category, vendorName);
    }

    /// @notice Suspends a vendor: it can receive no payment until reactivated (it can still redeem).
    /// @param vendor A registered vendor.
    /// @param reason Why, for the record.
    function suspendVendor(address vendor, string calldata reason) external onlyRole(COMPLIANCE_ROLE) {
        _setSuspended(vendor, true, reason);
    }

    /// @notice Lifts a vendor's suspension.
    /// @param vendor A registered vendor.
    /// @param reason Why, for the record.
    function reactivateVendor(address vendor, string calldata reason) external onlyRole(COMPLIANCE_ROLE) {
        _setSuspended(vendor, false, reason);
    }

    /// @notice Enrols spenders in a program with their department codes (or updates their departments).
    /// @param spenders The spenders' accounts.
    /// @param programId An existing program.
    /// @param departmentCodes One department code per spender.
    function enrol(address[] calldata spenders, uint16 programId, bytes32[] calldata departmentCodes)
        external
        onlyRole(PROGRAM_MANAGER_ROLE)
    {
        _requireProgram(programId);
        if (spenders.length != departmentCodes.length) revert LengthMismatch(spenders.length, departmentCodes.length);
        for (uint256 i = 0; i < spenders.length; ++i) {
            address spender = spenders[i];
            if (spender == address(0)) revert ZeroAddress();
            Account memory a = _accounts[spender];
            if (a.kind == Kind.None) {
                a.kind = Kind.Spender;
                a.programId = programId;
                _accounts[spender] = a;
            } else if (a.kind != Kind.Spender) {
                revert AlreadyRegistered(spender, uint8(a.kind));
            } else if (a.programId != programId) {
                revert SpenderInOtherProgram(spender, a.programId, programId);
            }
            _departments[spender] = departmentCodes[i];
            emit SpenderEnrolled(spender, programId, departmentCodes[i]);
        }
    }

    /// @notice Gives one spender its own cap per period in one category, replacing the program's.
    /// @param spender An enrolled spender.
    /// @param category Merchant category.
    /// @param cap The spender's cap (NO_CAP = none).
    function setCapOverride(address spender, uint8 category, uint48 cap) external onlyRole(PROGRAM_MANAGER_ROLE) {
        _setCapOverride(spender, category, CapOverride(true, cap));
    }

    /// @notice Removes a spender's cap override; the program's cap applies again.
    /// @param spender An enrolled spender.
    /// @param category Merchant category.
    function clearCapOverride(address spender, uint8 category) external onlyRole(PROGRAM_MANAGER_ROLE) {
        _setCapOverride(spender, category, CapOverride(false, 0));
    }

    /// @notice The department code a spender was enrolled with.
    /// @param spender A spender.
    function departmentOf(address spender) external view returns (bytes32) {
        return _departments[spender];
    }

    /// @notice A spender's cap override in a category.
    /// @param spender A spender.
    /// @param category Merchant category.
    /// @return active Whether an override applies.
    /// @return cap The override.
    function capOverrideOf(address spender, uint8 category) external view returns (bool active, uint48 cap) {
        CapOverride memory o = _capOverrides[spender][category];
        return (o.active, o.cap);
    }

    /// @notice Creates a program (a budget line with its spending rules).
    /// @param p The program's parameters.
    /// @return programId The new program's id (1, 2, ...).
    function createProgram(ProgramParams calldata p) external onlyRole(PROGRAM_MANAGER_ROLE) returns (uint16 programId) {
        if (_programCount == type(uint16).max) revert TooManyPrograms();
        programId = ++_programCount;
        // Not paused on its own; a token-wide pause applies to it all the same (payments read `_paused`).
        _configure(programId, p, 1, false);
    }

    /// @notice Replaces a program's rules; spenders' cached limits refresh at their next payment. Every update
    /// bumps the program's version (that is what stales the caches, including a change of UTC offset); after
    /// 65,534 updates the version is exhausted and updates are refused (ProgramVersionExhausted) rather than
    /// wrapped, since a wrapped version could match a months-old cache.
    /// @param programId An existing program.
    /// @param p The new parameters.
    function updateProgram(uint16 programId, ProgramParams calldata p) external onlyRole(PROGRAM_MANAGER_ROLE) {
        ProgramRules memory r = _requireProgram(programId);
        if (r.version == type(uint16).max) revert ProgramVersionExhausted(programId);
        unchecked {
            _configure(programId, p, r.version + 1, r.halted);
        }
    }

    /// @notice Number of programs created.
    function programCount() external view returns (uint16) {
        return _programCount;
    }

    /// @notice The rules of a program that every payment checks (`halted`: paused on its own, as
    /// `programPaused`; the token-wide pause is `paused()`).
    /// @param programId Program.
    function programRules(uint16 programId) external view returns (ProgramRules memory) {
        return _rules[programId];
    }

    /// @notice A program's treasury, per-payment limit and evidence threshold.
    /// @param programId Program.
    function programConfig(uint16 programId) external view returns (ProgramConfig memory) {
        return _config[programId];
    }

    /// @notice A program's name.
    /// @param programId Program.
    function programName(uint16 programId) external view returns (string memory) {
        return _programNames[programId];
    }

    /// @notice Whether compliance paused this program on its own (see also `paused`).
    /// @param programId Program.
    function programPaused(uint16 programId) external view returns (bool) {
        return _programPaused[programId];
    }

    /// @notice A program's cap per period for a category (NO_CAP = none).
    /// @param programId Program.
    /// @param category Merchant category.
    function categoryCap(uint16 programId, uint8 category) external view returns (uint48) {
        return _categoryCaps[programId][category];
    }

    /// @notice Allocates from a program's treasury to its spenders, once per `batchRef`: re-sending a batch
    /// that was applied reverts with BatchAlreadyApplied, so a crashed disbursal can be re-run safely.
    /// @param batchRef Unique non-zero reference of this batch.
    /// @param programId The program whose treasury pays.
    /// @param spenders Spenders enrolled in the program.
    /// @param amounts One amount per spender.
    function allocate(bytes32 batchRef, uint16 programId, address[] calldata spenders, uint256[] calldata amounts)
        external
        onlyRole(PROGRAM_MANAGER_ROLE)
    {
        if (batchRef == bytes32(0)) revert MissingReference();
        if (_batchApplied[batchRef]) revert BatchAlreadyApplied(batchRef);
        uint256 n = spenders.length;
        if (n == 0) revert EmptyBatch();
        if (n != amounts.length) revert LengthMismatch(n, amounts.length);
        ProgramRules memory r = _requireProgram(programId);
        _requireOpen(programId, r);
        address treasury = _config[programId].treasury;
        Account memory t = _accounts[treasury];
        if (t.frozen) revert AccountFrozen(treasury);
        uint256 total = 0;
        for (uint256 i = 0; i < n; ++i) {
            address spender = spenders[i];
            uint256 amount = amounts[i];
            if (amount == 0) revert ZeroAmount();
            total += amount;
            if (total > t.balance) revert InsufficientBalance(treasury, t.balance, total);
            Account memory a = _accounts[spender];
            _requireSpenderOf(spender, a, programId);
            unchecked {
                // Cannot overflow: every balance is at most totalSupply, which is capped at type(uint96).max.
                a.balance += uint96(amount);
            }
            _accounts[spender] = a;
            emit IERC20.Transfer(treasury, spender, amount);
            emit Allocated(batchRef, programId, spender, amount);
        }
        unchecked {
            t.balance -= uint96(total);
        }
        _accounts[treasury] = t;
        _batchApplied[batchRef] = true;
        emit AllocationBatch(batchRef, programId, msg.sender, n, total);
    }

    /// @notice Whether an allocation batch reference has been applied.
    /// @param batchRef Batch reference.
    function batchApplied(bytes32 batchRef) external view returns (bool) {
        return _batchApplied[batchRef];
    }

    /// @notice The caller (a vendor) redeems `amount`: the tokens are burned and the bank pays the amount into
    /// the vendor's bank account against `settlementReference`. Each reference is spent once per vendor, so one
    /// payout instruction can never be redeemed against twice (SettlementReferenceUsed).
    /// @param amount Amount.
    /// @param settlementReference The reference the bank settles on (e.g. the payout instruction's id), as
    /// text; it is kept in the Redeemed event for auditors and spent as keccak256(bytes(settlementReference)).
    function redeem(uint256 amount, string calldata settlementReference) external {
        _requireNotPaused();
        if (bytes(settlementReference).length == 0) revert MissingReference();
        bytes32 settlementRef = keccak256(bytes(settlementReference));
        if (_settlementRefs[msg.sender][settlementRef]) revert SettlementReferenceUsed(msg.sender, settlementRef);
        if (amount == 0) revert ZeroAmount();
        Account memory a = _requireKind(msg.sender, Kind.Vendor);
        if (a.frozen) revert AccountFrozen(msg.sender);
        if (amount > a.balance) revert InsufficientBalance(msg.sender, a.balance, amount);
        unchecked {
            a.balance -= uint96(amount);
            _totalSupply -= amount;
        }
        _accounts[msg.sender] = a;
        _settlementRefs[msg.sender][settlementRef] = true;
        emit IERC20.Transfer(msg.sender, address(0), amount);
        emit Redeemed(msg.sender, settlementRef, amount, settlementReference);
    }

    /// @notice Whether `vendor` has already redeemed against a settlement reference.
    /// @param vendor Vendor.
    /// @param settlementRef keccak256 of the reference's text (as `redeem` spends it).
    function settlementReferenceUsed(address vendor, bytes32 settlementRef) external view returns (bool) {
        return _settlementRefs[vendor][settlementRef];
    }

    /// @notice Sends the balances of spenders whose program has ended back to the program's treasury.
    /// Anyone may call it; unspent budget lapses at the end of the program.
    /// @param spenders Spenders of ended programs (zero balances are skipped).
    function sweepExpired(address[] calldata spenders) external {
        _requireNotPaused();
        for (uint256 i = 0; i < spenders.length; ++i) {
            address spender = spenders[i];
            Account memory a = _requireKind(spender, Kind.Spender);
            ProgramRules memory r = _rules[a.programId];
            if (block.timestamp < r.end) revert ProgramNotEnded(a.programId, r.end);
            if (a.balance == 0) continue;
            uint256 amount = a.balance;
            _moveToTreasury(spender, a, amount);
            emit Swept(spender, a.programId, msg.sender, amount);
        }
    }

    /// @notice Pauses every movement of tokens (compliance actions stay possible).
    /// @dev O(1), whatever the number of programs: it writes the one `_paused` flag and nothing else, because
    /// every movement reads that flag itself (payments in both paths, returns, allocations, redeem, mint, sweep).
    /// An emergency stop therefore always fits a block. The price is one cold SLOAD (2,100 gas) per payment:
    /// a payment otherwise reads only per-account and per-program slots, so no slot it already reads could
    /// carry the flag without mirroring it into every program (which made this function O(programs) before).
    /// tests/contracts/test_payment_engine_findings.py checks the gas is the same for 1 and for 200 programs.
    function pause() external onlyRole(COMPLIANCE_ROLE) {
        _paused = true;
        emit Paused(msg.sender);
    }

    /// @notice Lifts the token-wide pause (programs paused on their own stay paused). O(1), like `pause`.
    function unpause() external onlyRole(COMPLIANCE_ROLE) {
        _paused = false;
        emit Unpaused(msg.sender);
    }

    /// @notice Whether the whole token is paused.
    function paused() external view returns (bool) {
        return _paused;
    }

    /// @notice Pauses or resumes one program's payments and allocations.
    /// @param programId Program.
    /// @param paused_ True to pause.
    function setProgramPaused(uint16 programId, bool paused_) external onlyRole(COMPLIANCE_ROLE) {
        ProgramRules memory r = _requireProgram(programId);
        _programPaused[programId] = paused_;
        // The rules word's copy is what payments read; the token-wide pause is not folded in (see `pause`).
        r.halted = paused_;
        _rules[programId] = r;
        emit ProgramPauseChanged(programId, paused_, msg.sender);
    }

    /// @notice Freezes a registered account: it can neither send nor receive until unfrozen.
    /// @param account The account.
    /// @param reason Why, for the record.
    function freeze(address account, string calldata reason) external onlyRole(COMPLIANCE_ROLE) {
        _setFrozen(account, true, reason);
    }

    /// @notice Unfreezes an account.
    /// @param account The account.
    /// @param reason Why, for the record.
    function unfreeze(address account, string calldata reason) external onlyRole(COMPLIANCE_ROLE) {
        _setFrozen(account, false, reason);
    }

    /// @notice Moves `amount` of a spender's tokens back to its program's treasury (works on frozen wallets and
    /// while paused).
    /// @param spender A spender.
    /// @param amount Amount.
    /// @param reason Why, for the record.
    function clawback(address spender, uint256 amount, string calldata reason) external onlyRole(COMPLIANCE_ROLE) {
        if (amount == 0) revert ZeroAmount();
        Account memory a = _requireKind(spender, Kind.Spender);
        if (amount > a.balance) revert InsufficientBalance(spender, a.balance, amount);
        _moveToTreasury(spender, a, amount);
        emit ClawedBack(spender, a.programId, msg.sender, amount, reason);
    }

    function _configure(uint16 programId, ProgramParams calldata p, uint16 version, bool halted) private {
        _requireKind(p.treasury, Kind.Treasury);
        if (p.start >= p.end) revert InvalidWindow(p.start, p.end);
        if (p.utcOffsetMinutes < -720 || p.utcOffsetMinutes > 840) revert InvalidUtcOffset(p.utcOffsetMinutes);
        for (uint8 d = 0; d < HOURS_DAYS; ++d) {
            uint256 window = uint256(p.openingHours) >> (uint256(d) * HOURS_DAY_BITS);
            uint8 opening = uint8(window & HOURS_FIELD_MASK);
            uint8 closing = uint8((window >> HOURS_CLOSING) & HOURS_FIELD_MASK);
            if (opening > closing || closing > 24) revert InvalidHours(d, opening, closing);
        }
        if (uint256(p.openingHours) >> (HOURS_DAY_BITS * HOURS_DAYS) != 0) revert InvalidHours(uint8(HOURS_DAYS), 0, 0);
        if (p.categories.length != p.caps.length) revert LengthMismatch(p.categories.length, p.caps.length);
        uint64 mask = 0;
        for (uint256 i = 0; i < p.categories.length; ++i) {
            uint8 category = p.categories[i];
            _requireCategory(category);
            mask |= uint64(1) << category;
            _categoryCaps[programId][category] = p.caps[i];
            emit CategoryCapSet(programId, category, p.caps[i]);
        }
        _rules[programId] = ProgramRules({
            version: version,
            halted: halted,
            start: p.start,
            end: p.end,
            utcOffsetMinutes: p.utcOffsetMinutes,
            categories: mask,
            openingHours: p.openingHours
        });
        _config[programId] = ProgramConfig(p.treasury, p.perPaymentLimit, p.evidenceThreshold);
        _programNames[programId] = p.name;
        emit ProgramConfigured(
            programId,
            version,
            p.name,
            p.treasury,
            p.start,
            p.end,
            p.utcOffsetMinutes,
            mask,
            p.openingHours,
            p.perPaymentLimit,
            p.evidenceThreshold
        );
    }

    function _setSuspended(address vendor, bool suspended, string calldata reason) private {
        Account memory a = _requireKind(vendor, Kind.Vendor);
        a.suspended = suspended;
        _accounts[vendor] = a;
        emit VendorSuspensionChanged(vendor, suspended, msg.sender, reason);
    }

    function _setFrozen(address account, bool frozen, string calldata reason) private {
        Account memory a = _accounts[account];
        if (a.kind == Kind.None) revert NotRegistered(account);
        a.frozen = frozen;
        _accounts[account] = a;
        emit FreezeChanged(account, frozen, msg.sender, reason);
    }

    function _setCapOverride(address spender, uint8 category, CapOverride memory o) private {
        _requireKind(spender, Kind.Spender);
        _requireCategory(category);
        _capOverrides[spender][category] = o;
        // Stale the cached limits so the next payment re-reads them; what was spent this period is kept.
        _spending[spender][category].version = 0;
        emit CapOverrideSet(spender, category, o.cap, o.active);
    }

    function _requireOpen(uint16 programId, ProgramRules memory r) private view {
        if (_paused || r.halted) _revertPaused(programId);
        if (block.timestamp >= r.end) revert ProgramEnded(programId, r.end);
    }

    function _requireSpenderOf(address spender, Account memory a, uint16 programId) private pure {
        if (a.kind != Kind.Spender) revert WrongKind(spender, uint8(Kind.Spender), uint8(a.kind));
        if (a.programId != programId) revert SpenderInOtherProgram(spender, a.programId, programId);
        if (a.frozen) revert AccountFrozen(spender);
    }

    function _requireCategory(uint8 category) private pure {
        if (category == 0 || category > MAX_CATEGORY) revert InvalidCategory(category);
    }
}
