# pragma version ~=0.4.3
# CometMainInterface getters (compound-finance/comet): asset infos, storefront/reserve parameters, prices,
# balances. getPrice reads the feed's latestRoundData as Comet.getPrice does (BadPrice when not positive).
struct AssetInfo:
    offset: uint8
    asset: address
    priceFeed: address
    scale: uint64
    borrowCollateralFactor: uint64
    liquidateCollateralFactor: uint64
    liquidationFactor: uint64
    supplyCap: uint128

struct CollateralInput:
    account: address
    asset: address
    amount: uint128

struct BorrowInput:
    account: address
    amount: uint256

interface Feed:
    def latestRoundData() -> (uint80, int256, uint256, uint256, uint80): view

infos: DynArray[AssetInfo, 24]
baseToken: public(address)
baseTokenPriceFeed: public(address)
decimals: public(uint8)
storeFrontPriceFactor: public(uint256)
targetReserves: public(uint256)
baseBorrowMin: public(uint256)
reserves: int256
borrow: HashMap[address, uint256]
collateral: HashMap[address, HashMap[address, uint128]]


@deploy
def __init__(_base: address, _feed: address, _decimals: uint8, _sfpf: uint256, _target: uint256, _min: uint256,
             _reserves: int256):
    self.baseToken = _base
    self.baseTokenPriceFeed = _feed
    self.decimals = _decimals
    self.storeFrontPriceFactor = _sfpf
    self.targetReserves = _target
    self.baseBorrowMin = _min
    self.reserves = _reserves


@external
def addAssets(inputs: DynArray[AssetInfo, 24]):
    for a: AssetInfo in inputs:
        assert convert(a.offset, uint256) == len(self.infos)
        self.infos.append(a)


@external
def setBalances(coll: DynArray[CollateralInput, 32], debt: DynArray[BorrowInput, 32]):
    for c: CollateralInput in coll:
        self.collateral[c.account][c.asset] = c.amount
    for d: BorrowInput in debt:
        self.borrow[d.account] = d.amount


@view
@external
def numAssets() -> uint8:
    return convert(len(self.infos), uint8)


@view
@external
def getAssetInfo(i: uint8) -> AssetInfo:
    assert convert(i, uint256) < len(self.infos), "BadAsset"
    return self.infos[i]


@view
@external
def getReserves() -> int256:
    return self.reserves


@view
@external
def getPrice(priceFeed: address) -> uint256:
    r: uint80 = 0
    answer: int256 = 0
    s: uint256 = 0
    u: uint256 = 0
    a: uint80 = 0
    r, answer, s, u, a = staticcall Feed(priceFeed).latestRoundData()
    assert answer > 0, "BadPrice"
    return convert(answer, uint256)


@view
@external
def borrowBalanceOf(account: address) -> uint256:
    return self.borrow[account]


@view
@external
def collateralBalanceOf(account: address, asset: address) -> uint128:
    return self.collateral[account][asset]
