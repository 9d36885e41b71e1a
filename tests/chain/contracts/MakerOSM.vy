# pragma version ~=0.4.3
# OSM.hop (uint16 seconds).
hop: public(uint16)


@deploy
def __init__(_hop: uint16):
    self.hop = _hop
