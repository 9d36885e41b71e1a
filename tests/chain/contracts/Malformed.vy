# pragma version ~=0.4.3
# Answers Comet.numAssets() with a word that is not a uint8 (a malformed return).
@view
@external
def numAssets() -> uint256:
    return 300
