"""Consensus: merged answers from several annotators."""

from labelgate.consensus.categorical import DawidSkene, MajorityVote
from labelgate.consensus.spatial import merge

__all__ = ["DawidSkene", "MajorityVote", "merge"]
