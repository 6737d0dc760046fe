"""Probes: clients that exercise the cluster and record what they saw."""
