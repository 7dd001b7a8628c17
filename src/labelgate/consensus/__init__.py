"""Consensus: merged answers from several annotators."""

from labelgate.consensus.categorical import DawidSkene, MajorityVote

__all__ = ["DawidSkene", "MajorityVote"]
