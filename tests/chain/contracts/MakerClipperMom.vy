# pragma version ~=0.4.3
# ClipperMom.tolerance(clip) [ray].
tolerance: public(HashMap[address, uint256])


@external
def setTolerances(clips: DynArray[address, 16], tols: DynArray[uint256, 16]):
    for i: uint256 in range(len(clips), bound=16):
        self.tolerance[clips[i]] = tols[i]
