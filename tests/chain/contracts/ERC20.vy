# pragma version ~=0.4.3
# Test token: the ERC-20 metadata getters cascade fetch reads (symbol, decimals).
symbol: public(String[32])
decimals: public(uint8)


@deploy
def __init__(_symbol: String[32], _decimals: uint8):
    self.symbol = _symbol
    self.decimals = _decimals
