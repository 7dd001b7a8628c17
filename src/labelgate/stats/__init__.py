"""Statistics shared by the engines: confidence intervals and resampling."""

from labelgate.stats.bootstrap import cluster_bootstrap, cluster_bootstrap_mean
from labelgate.stats.intervals import wilson_interval

__all__ = ["cluster_bootstrap", "cluster_bootstrap_mean", "wilson_interval"]
