"""Decisions from scores: GT planning, scorecards, alerts, history and the release gate."""
