"""Stop-loss clusters: each fires once when the price reaches its level, stops crossed before the start never
fire, flows are signed base units per path, and the per-model tallies give each source's share of the selling."""

import json

import numpy as np
import pytest

from optimizer.behaviour import FlowTally, load_stop_clusters, selling_shares, stop_clusters
from optimizer.errors import InputError
from optimizer.scenario.history import read_price_csv
from optimizer.snapshots import data_dir

SPEC = {"clusters": [{"side": "sell", "level_usd": 95, "size_base": 10}, {"side": "sell", "level_usd": 90, "size_base": 5},
                     {"side": "buy", "level_usd": 105, "size_base": 7}]}


def test_each_stop_fires_once_when_its_level_is_reached():
    c = stop_clusters(SPEC)
    st = c.start(2, 100.0)
    path = [(96.0, 101.0), (94.0, 99.0), (89.0, 97.0), (93.0, 106.0), (80.0, 110.0)]  # (low, high) per call
    flows = []
    for lo, hi in path:
        f, st = c.step(st, np.array([lo, 100.0]), np.array([hi, 100.0]))
        flows.append(f)
    flows = np.array(flows)
    np.testing.assert_array_equal(flows[:, 0], [0, -10, -5, 7, 0])  # 95 at the touch, 90, the buy stop at 105
    np.testing.assert_array_equal(flows[:, 1], 0)  # the path that never moved
    np.testing.assert_array_equal(st.tally.sold_base, [15, 0])
    np.testing.assert_array_equal(st.tally.bought_base, [7, 0])
    f, _ = c.step(c.start(1, 100.0), 95.0, 95.0)  # touching the level fires it
    assert f[0] == -10


def test_stops_already_crossed_at_the_start_never_fire():
    c = stop_clusters(SPEC)
    st = c.start(1, 92.0)  # the 95 sell stop fired before the window
    f, st = c.step(st, 91.0, 92.0)
    assert f[0] == 0
    f, _ = c.step(st, 89.0, 92.0)
    assert f[0] == -5


def test_example_clusters_on_the_10_october_2025_window():
    c = load_stop_clusters(data_dir() / "behaviour" / "stops_btc_example.json")
    h = read_price_csv(data_dir() / "prices" / "btc_usdt_perp_1m_2025-10-10_1913-2229.csv")
    st = c.start(1, h.open[0])
    total = np.zeros(1)
    for lo, hi in zip(h.low, h.high, strict=True):
        f, st = c.step(st, lo, hi)
        total += f
    # low 101,516.5: the 115k, 112k, 110k and 105k sell stops fire (2,200 BTC), 100k does not; high 117,145.3
    assert total[0] == -2_200 and st.tally.sold_base[0] == 2_200 and st.tally.bought_base[0] == 0


def test_selling_shares_add_up_per_path():
    liq = FlowTally.zeros(3).add(np.array([-30.0, 0.0, -1.0]))
    stops = FlowTally.zeros(3).add(np.array([-10.0, 5.0, 0.0]))
    shares = selling_shares({"liquidations": liq.sold_base, "stops": stops.sold_base})
    np.testing.assert_allclose(shares["liquidations"], [0.75, np.nan, 1.0])
    np.testing.assert_allclose(shares["stops"], [0.25, np.nan, 0.0])
    assert stops.net_base.tolist() == [-10.0, 5.0, 0.0]


@pytest.mark.parametrize("spec,field,rule", [
    ({"clusters": []}, "clusters", "must be a non-empty list"),
    ({"clusters": [{"side": "hold", "level_usd": 1, "size_base": 1}]}, "clusters[0].side", "must be sell or buy"),
    ({"clusters": [{"side": "sell", "level_usd": 0, "size_base": 1}]}, "clusters[0].level_usd", "must be a positive"),
    ({"clusters": [{"side": "sell", "level_usd": 1, "size_base": "big"}]}, "clusters[0].size_base", "must be a positive"),
])
def test_bad_cluster_files_are_one_line_errors(tmp_path, spec, field, rule):
    p = tmp_path / "s.json"
    p.write_text(json.dumps(spec))
    with pytest.raises(InputError) as e:
        load_stop_clusters(p)
    assert str(e.value).startswith(f"{p}: {field}: {rule}")
