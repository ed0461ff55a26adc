"""Account quotas the emulator enforces, so their errors can be provoked in tests.

AWS publishes no fixed figures for these LMI quotas in the API model; the defaults are generous
and a test lowers them through the control endpoint (see ``control``) or the environment.
"""

from __future__ import annotations

import os

# CapacityProviderLimitExceededException beyond this many providers per account and region.
max_capacity_providers = int(os.environ.get("LMI_EMULATOR_MAX_CAPACITY_PROVIDERS", "1000"))

# FunctionVersionsPerCapacityProviderLimitExceededException beyond this many function versions
# (including $LATEST) attached to one provider.
max_versions_per_capacity_provider = int(
    os.environ.get("LMI_EMULATOR_MAX_VERSIONS_PER_CAPACITY_PROVIDER", "1000")
)
