"""Checkers: metrics of a trial from its history, statistics over trials,
and assertions that read like the claim (Jepsen's checkers)."""
