# pragma version ~=0.4.3
# Multicall3.aggregate3 with its real signature. The bounds (128 calls, 1 KiB per return) are this test
# contract's: Vyper allocates memory for the largest array, the Solidity Multicall3 has no such limit.
struct Call3:
    target: address
    allowFailure: bool
    callData: Bytes[1024]

struct Result:
    success: bool
    returnData: Bytes[1024]


@external
@payable
def aggregate3(calls: DynArray[Call3, 128]) -> DynArray[Result, 128]:
    results: DynArray[Result, 128] = []
    for c: Call3 in calls:
        success: bool = False
        data: Bytes[1024] = b""
        success, data = raw_call(c.target, c.callData, max_outsize=1024, revert_on_failure=False, is_static_call=True)
        assert success or c.allowFailure, "Multicall3: call failed"
        results.append(Result(success=success, returnData=data))
    return results
