# pragma version ~=0.4.3
# dss Vat getters: ilks(ilk) -> (Art, rate, spot, line, dust) and urns(ilk, urn) -> (ink, art).
struct Ilk:
    Art: uint256
    rate: uint256
    spot: uint256
    line: uint256
    dust: uint256

struct IlkInput:
    ilk: bytes32
    Art: uint256
    rate: uint256
    spot: uint256
    line: uint256
    dust: uint256

struct UrnInput:
    ilk: bytes32
    urn: address
    ink: uint256
    art: uint256

ilk_data: HashMap[bytes32, Ilk]
ink: HashMap[bytes32, HashMap[address, uint256]]
art: HashMap[bytes32, HashMap[address, uint256]]


@external
def setIlks(inputs: DynArray[IlkInput, 16]):
    for i: IlkInput in inputs:
        self.ilk_data[i.ilk] = Ilk(Art=i.Art, rate=i.rate, spot=i.spot, line=i.line, dust=i.dust)


@external
def setUrns(inputs: DynArray[UrnInput, 16]):
    for u: UrnInput in inputs:
        self.ink[u.ilk][u.urn] = u.ink
        self.art[u.ilk][u.urn] = u.art


@view
@external
def ilks(ilk: bytes32) -> (uint256, uint256, uint256, uint256, uint256):
    i: Ilk = self.ilk_data[ilk]
    return (i.Art, i.rate, i.spot, i.line, i.dust)


@view
@external
def urns(ilk: bytes32, urn: address) -> (uint256, uint256):
    return (self.ink[ilk][urn], self.art[ilk][urn])
