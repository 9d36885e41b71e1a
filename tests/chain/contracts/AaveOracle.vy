# pragma version ~=0.4.3
# IAaveOracle getters. getAssetPrice follows AaveOracle.sol: the source's latestAnswer when it is set
# and positive, else the fallback price (a separate fallback oracle on chain, a mapping here).
interface Aggregator:
    def latestAnswer() -> int256: view

BASE_CURRENCY: public(address)
BASE_CURRENCY_UNIT: public(uint256)
sources: HashMap[address, address]
fallback_price: HashMap[address, uint256]


@deploy
def __init__(_unit: uint256):
    self.BASE_CURRENCY_UNIT = _unit


@external
def setAssetSources(assets: DynArray[address, 64], srcs: DynArray[address, 64]):
    for i: uint256 in range(len(assets), bound=64):
        self.sources[assets[i]] = srcs[i]


@external
def setFallbackPrices(assets: DynArray[address, 64], prices: DynArray[uint256, 64]):
    for i: uint256 in range(len(assets), bound=64):
        self.fallback_price[assets[i]] = prices[i]


@view
@external
def getSourceOfAsset(asset: address) -> address:
    return self.sources[asset]


@view
@external
def getAssetPrice(asset: address) -> uint256:
    src: address = self.sources[asset]
    if src == empty(address):
        return self.fallback_price[asset]
    p: int256 = staticcall Aggregator(src).latestAnswer()
    if p > 0:
        return convert(p, uint256)
    return self.fallback_price[asset]
