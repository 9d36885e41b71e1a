# pragma version ~=0.4.3
# dss Spotter getters: ilks(ilk) -> (pip, mat) and par.
struct IlkInput:
    ilk: bytes32
    pip: address
    mat: uint256

par: public(uint256)
pip: HashMap[bytes32, address]
mat: HashMap[bytes32, uint256]


@deploy
def __init__(_par: uint256):
    self.par = _par


@external
def setIlks(inputs: DynArray[IlkInput, 16]):
    for i: IlkInput in inputs:
        self.pip[i.ilk] = i.pip
        self.mat[i.ilk] = i.mat


@view
@external
def ilks(ilk: bytes32) -> (address, uint256):
    return (self.pip[ilk], self.mat[ilk])
