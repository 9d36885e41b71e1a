# pragma version ~=0.4.3
# IPool getters of Aave v3.3-3.6. initReserves packs each reserve's configuration with the bit layout
# and range checks of ReserveConfiguration.sol (aave-dao/aave-v3-origin), independently of the reader.
struct ReserveInput:
    asset: address
    ltv: uint256
    lt: uint256
    lb: uint256
    decimals: uint256
    active: bool
    frozen: bool
    borrowing: bool
    paused: bool
    isolation: bool
    siloed: bool
    flashloan: bool
    reserve_factor: uint256
    borrow_cap: uint256
    supply_cap: uint256
    protocol_fee: uint256
    debt_ceiling: uint256

struct ReserveConfigurationMap:
    data: uint256

struct ReserveDataLegacy:
    configuration: ReserveConfigurationMap
    liquidityIndex: uint128
    currentLiquidityRate: uint128
    variableBorrowIndex: uint128
    currentVariableBorrowRate: uint128
    currentStableBorrowRate: uint128
    lastUpdateTimestamp: uint40
    id: uint16
    aTokenAddress: address
    stableDebtTokenAddress: address
    variableDebtTokenAddress: address
    interestRateStrategyAddress: address
    accruedToTreasury: uint128
    unbacked: uint128
    isolationModeTotalDebt: uint128

struct CollateralConfig:
    ltv: uint16
    liquidationThreshold: uint16
    liquidationBonus: uint16

struct EModeInput:
    id: uint8
    ltv: uint16
    lt: uint16
    lb: uint16
    label: String[64]
    collateral_bitmap: uint128
    borrowable_bitmap: uint128

struct UserInput:
    user: address
    emode: uint256
    config: uint256

RAY: constant(uint128) = 10**27
reserves: DynArray[address, 128]
config: HashMap[address, uint256]
reserve_id: HashMap[address, uint16]
emode_cfg: HashMap[uint8, CollateralConfig]
emode_label: HashMap[uint8, String[64]]
emode_coll: HashMap[uint8, uint128]
emode_borrow: HashMap[uint8, uint128]
user_emode: HashMap[address, uint256]
user_config: HashMap[address, uint256]


@internal
@pure
def _flag(b: bool, pos: uint256) -> uint256:
    if b:
        return 1 << pos
    return 0


@external
def initReserves(inputs: DynArray[ReserveInput, 32]):
    for r: ReserveInput in inputs:
        assert r.ltv <= 65535 and r.lt <= 65535 and r.lb <= 65535 and r.decimals <= 255
        assert r.reserve_factor <= 65535 and r.protocol_fee <= 65535
        assert r.borrow_cap <= 68719476735 and r.supply_cap <= 68719476735 and r.debt_ceiling <= 1099511627775
        data: uint256 = r.ltv | (r.lt << 16) | (r.lb << 32) | (r.decimals << 48)
        data = data | self._flag(r.active, 56) | self._flag(r.frozen, 57) | self._flag(r.borrowing, 58)
        data = data | self._flag(r.paused, 60) | self._flag(r.isolation, 61) | self._flag(r.siloed, 62)
        data = data | self._flag(r.flashloan, 63)
        data = data | (r.reserve_factor << 64) | (r.borrow_cap << 80) | (r.supply_cap << 116)
        data = data | (r.protocol_fee << 152) | (r.debt_ceiling << 212)
        self.reserve_id[r.asset] = convert(len(self.reserves), uint16)
        self.config[r.asset] = data
        self.reserves.append(r.asset)


@external
def configureEModes(inputs: DynArray[EModeInput, 40]):
    for e: EModeInput in inputs:
        assert e.id != 0
        self.emode_cfg[e.id] = CollateralConfig(ltv=e.ltv, liquidationThreshold=e.lt, liquidationBonus=e.lb)
        self.emode_label[e.id] = e.label
        self.emode_coll[e.id] = e.collateral_bitmap
        self.emode_borrow[e.id] = e.borrowable_bitmap


@external
def setUsers(inputs: DynArray[UserInput, 32]):
    for u: UserInput in inputs:
        self.user_emode[u.user] = u.emode
        self.user_config[u.user] = u.config


@view
@external
def getReservesList() -> DynArray[address, 128]:
    return self.reserves


@view
@external
def getConfiguration(asset: address) -> ReserveConfigurationMap:
    return ReserveConfigurationMap(data=self.config[asset])


@view
@external
def getReserveData(asset: address) -> ReserveDataLegacy:
    return ReserveDataLegacy(
        configuration=ReserveConfigurationMap(data=self.config[asset]), liquidityIndex=RAY,
        currentLiquidityRate=0, variableBorrowIndex=RAY, currentVariableBorrowRate=0, currentStableBorrowRate=0,
        lastUpdateTimestamp=convert(block.timestamp, uint40), id=self.reserve_id[asset],
        aTokenAddress=empty(address), stableDebtTokenAddress=empty(address), variableDebtTokenAddress=empty(address),
        interestRateStrategyAddress=empty(address), accruedToTreasury=0, unbacked=0, isolationModeTotalDebt=0)


@view
@external
def getEModeCategoryCollateralConfig(id: uint8) -> CollateralConfig:
    return self.emode_cfg[id]


@view
@external
def getEModeCategoryLabel(id: uint8) -> String[64]:
    return self.emode_label[id]


@view
@external
def getEModeCategoryCollateralBitmap(id: uint8) -> uint128:
    return self.emode_coll[id]


@view
@external
def getEModeCategoryBorrowableBitmap(id: uint8) -> uint128:
    return self.emode_borrow[id]


@view
@external
def getUserEMode(user: address) -> uint256:
    return self.user_emode[user]


@view
@external
def getUserConfiguration(user: address) -> ReserveConfigurationMap:
    return ReserveConfigurationMap(data=self.user_config[user])
