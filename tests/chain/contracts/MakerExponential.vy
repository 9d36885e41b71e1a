# pragma version ~=0.4.3
# abaci.sol ExponentialDecrease getter: cut [ray].
cut: public(uint256)


@deploy
def __init__(_cut: uint256):
    self.cut = _cut
