# pragma version ~=0.4.3
# abaci.sol LinearDecrease getter: tau [s].
tau: public(uint256)


@deploy
def __init__(_tau: uint256):
    self.tau = _tau
