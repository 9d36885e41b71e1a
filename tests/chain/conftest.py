"""Session fixtures: one py-evm chain per test process, each venue deployed once with the bundled values."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from deploy import deploy_aave, deploy_comet, deploy_maker, deploy_multicall
from evm import Chain


@pytest.fixture(scope="session")
def chain():
    return Chain()


@pytest.fixture(scope="session")
def multicall(chain):
    return deploy_multicall(chain)


@pytest.fixture(scope="session")
def aave(chain, multicall):
    return deploy_aave(chain, multicall)


@pytest.fixture(scope="session")
def comet(chain, multicall):
    return deploy_comet(chain, multicall)


@pytest.fixture(scope="session")
def maker(chain, multicall):
    return deploy_maker(chain, multicall)


@pytest.fixture
def restore(chain):
    """Undo a test's state changes (eth-tester snapshot / revert)."""
    snap = chain.tester.take_snapshot()
    yield chain
    chain.tester.revert_to_snapshot(snap)
