# pragma version ~=0.4.3
# dss Clipper getters (clip.sol): buf, tail, cusp [ray / s / ray], chip [wad], tip [rad], stopped, calc, wards.
buf: public(uint256)
tail: public(uint256)
cusp: public(uint256)
chip: public(uint64)
tip: public(uint192)
stopped: public(uint256)
calc: public(address)
wards: public(HashMap[address, uint256])


@deploy
def __init__(_buf: uint256, _tail: uint256, _cusp: uint256, _chip: uint64, _tip: uint192, _stopped: uint256,
             _calc: address, _ward: address):
    self.buf = _buf
    self.tail = _tail
    self.cusp = _cusp
    self.chip = _chip
    self.tip = _tip
    self.stopped = _stopped
    self.calc = _calc
    self.wards[msg.sender] = 1
    if _ward != empty(address):
        self.wards[_ward] = 1
