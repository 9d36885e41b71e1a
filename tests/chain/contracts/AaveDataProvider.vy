# pragma version ~=0.4.3
# IPoolDataProvider (AaveProtocolDataProvider) getters: reserve tokens and per-user reserve data.
struct TokenData:
    symbol: String[32]
    tokenAddress: address

struct UserReserve:
    a_token: uint256
    stable_debt: uint256
    variable_debt: uint256
    collateral: bool

struct UserReserveInput:
    user: address
    asset: address
    a_token: uint256
    stable_debt: uint256
    variable_debt: uint256
    collateral: bool

tokens: DynArray[TokenData, 128]
user_reserve: HashMap[address, HashMap[address, UserReserve]]


@external
def addTokens(inputs: DynArray[TokenData, 64]):
    for t: TokenData in inputs:
        self.tokens.append(t)


@external
def setUserReserves(inputs: DynArray[UserReserveInput, 32]):
    for u: UserReserveInput in inputs:
        self.user_reserve[u.user][u.asset] = UserReserve(
            a_token=u.a_token, stable_debt=u.stable_debt, variable_debt=u.variable_debt, collateral=u.collateral)


@view
@external
def getAllReservesTokens() -> DynArray[TokenData, 128]:
    return self.tokens


@view
@external
def getUserReserveData(asset: address, user: address) -> (
        uint256, uint256, uint256, uint256, uint256, uint256, uint256, uint40, bool):
    r: UserReserve = self.user_reserve[user][asset]
    return (r.a_token, r.stable_debt, r.variable_debt, r.stable_debt, r.variable_debt, 0, 0, 0, r.collateral)
