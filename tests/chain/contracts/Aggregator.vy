# pragma version ~=0.4.3
# Chainlink price feed: AggregatorV3Interface.latestRoundData / decimals and AggregatorInterface.latestAnswer.
decimals: public(uint8)
description: public(String[64])
round_id: uint80
answer: int256
updated_at: uint256


@deploy
def __init__(_decimals: uint8, _description: String[64], _answer: int256, _updated_at: uint256):
    self.decimals = _decimals
    self.description = _description
    self.round_id = 1
    self.answer = _answer
    self.updated_at = _updated_at


@external
def setAnswer(_answer: int256, _updated_at: uint256):
    self.round_id += 1
    self.answer = _answer
    self.updated_at = _updated_at


@view
@external
def latestRoundData() -> (uint80, int256, uint256, uint256, uint80):
    return (self.round_id, self.answer, self.updated_at, self.updated_at, self.round_id)


@view
@external
def latestAnswer() -> int256:
    return self.answer
