# pragma version ~=0.4.3
# dss-chain-log getAddress: reverts on an unknown key, as ChainLog.sol does.
addr: HashMap[bytes32, address]


@external
def setAddress(key: bytes32, a: address):
    self.addr[key] = a


@view
@external
def getAddress(key: bytes32) -> address:
    a: address = self.addr[key]
    assert a != empty(address), "dss-chain-log/invalid-key"
    return a
