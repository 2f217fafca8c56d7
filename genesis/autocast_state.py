"""Whether ops run under autocast, and in which low-precision dtype.

`genesis.amp.autocast` sets this state; it sits low so that the layers
below amp can read it (a reduction keeps its fp32 result inside a region).
One state serves every device type.
"""

from __future__ import annotations

from genesis import dtypes

enabled = False
dtype = dtypes.float16  # the region's dtype; float16 outside any region


def is_autocast_enabled(device_type: str | None = None) -> bool:
    """Whether ops now run under autocast."""
    return enabled


def get_autocast_dtype(device_type: str | None = None) -> dtypes.DType:
    """The low-precision dtype of the current region (float16 outside any region)."""
    return dtype


def set_state(now_enabled: bool, now_dtype: dtypes.DType) -> None:
    global enabled, dtype
    enabled, dtype = now_enabled, now_dtype
