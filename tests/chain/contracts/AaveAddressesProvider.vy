# pragma version ~=0.4.3
# IPoolAddressesProvider getters.
pool: address
oracle: address
data_provider: address


@deploy
def __init__(_pool: address, _oracle: address, _data_provider: address):
    self.pool = _pool
    self.oracle = _oracle
    self.data_provider = _data_provider


@view
@external
def getPool() -> address:
    return self.pool


@view
@external
def getPriceOracle() -> address:
    return self.oracle


@view
@external
def getPoolDataProvider() -> address:
    return self.data_provider
