"""Every bundled venue simulator passes the shipped contract (optimizer.engine.testing)."""

import pytest

from optimizer.engine.testing import VenueSimulatorContract, bundled_cases
from optimizer.engine.venues import VENUES, LendingVenue, PerpVenue, register_venue, simulator_class
from protocols import AaveV3, Adapter, PerpAdapter

_BUILT: dict[str, object] = {}


@pytest.fixture(params=bundled_cases(), ids=lambda c: c.name)
def venue_case(request, tmp_path_factory):
    case = request.param
    if case.name not in _BUILT:  # one build per case for the whole module
        _BUILT[case.name] = case.build(tmp_path_factory.mktemp(case.name))
    return _BUILT[case.name]


class TestBundledVenues(VenueSimulatorContract):
    pass


def test_registry_maps_every_bundled_adapter_and_falls_back_along_the_mro():
    from protocols import LENDING_ADAPTERS, PERP_ADAPTERS

    for cls in LENDING_ADAPTERS.values():  # a wrapper where the venue needs one, else the generic one
        assert simulator_class(cls.__new__(cls)) is VENUES.get(cls, LendingVenue)
    for cls in PERP_ADAPTERS.values():  # every perp venue runs on the perp simulator
        assert simulator_class(cls.__new__(cls)) is PerpVenue
    assert VENUES[PerpAdapter] is PerpVenue
    with pytest.raises(TypeError, match="no venue simulator"):
        simulator_class(object())

    class ForkedAave(AaveV3):  # a fork keeps its parent's simulator
        name = "aave_fork"

    assert simulator_class(ForkedAave.__new__(ForkedAave)) is VENUES[AaveV3]
    assert VENUES[Adapter] is LendingVenue  # any other lending adapter runs on the generic simulator
    with pytest.raises(TypeError):
        register_venue(ForkedAave, object)  # type: ignore[arg-type]
