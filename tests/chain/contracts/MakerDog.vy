# pragma version ~=0.4.3
# dss Dog getters: ilks(ilk) -> (clip, chop, hole, dirt) and Hole.
struct IlkInput:
    ilk: bytes32
    clip: address
    chop: uint256
    hole: uint256

Hole: public(uint256)
clip: HashMap[bytes32, address]
chop: HashMap[bytes32, uint256]
hole: HashMap[bytes32, uint256]


@deploy
def __init__(_Hole: uint256):
    self.Hole = _Hole


@external
def setIlks(inputs: DynArray[IlkInput, 16]):
    for i: IlkInput in inputs:
        self.clip[i.ilk] = i.clip
        self.chop[i.ilk] = i.chop
        self.hole[i.ilk] = i.hole


@view
@external
def ilks(ilk: bytes32) -> (address, uint256, uint256, uint256):
    return (self.clip[ilk], self.chop[ilk], self.hole[ilk], 0)
