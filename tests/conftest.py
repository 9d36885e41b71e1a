import os

from hypothesis import HealthCheck, settings

# Deterministic property tests: a fixed derandomised profile everywhere (CI and local).
settings.register_profile("cascade", derandomize=True, deadline=None, max_examples=200,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "cascade"))
