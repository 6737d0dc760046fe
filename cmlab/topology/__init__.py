"""Topology files: the schema users write, and its resolution into a lab plan."""

from cmlab.topology.plan import LabPlan
from cmlab.topology.resolve import load, loads
from cmlab.topology.schema import Role, Topology

__all__ = ["LabPlan", "Role", "Topology", "load", "loads"]
