# pragma version ~=0.4.3
# abaci.sol StairstepExponentialDecrease getters: cut [ray], step [s].
cut: public(uint256)
step: public(uint256)


@deploy
def __init__(_cut: uint256, _step: uint256):
    self.cut = _cut
    self.step = _step
