"""Statistics shared by the engines: confidence intervals and resampling."""

from labelgate.stats.intervals import wilson_interval

__all__ = ["wilson_interval"]
