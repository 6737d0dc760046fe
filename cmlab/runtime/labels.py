"""Label keys on every Docker object a lab creates.

``down`` and ``status`` find a lab by :data:`LAB` alone, and read its plan
back from :data:`PLAN`, so no local state file is needed.
"""

LAB = "cmlab.lab"
#: What the object is to the lab: node, router, network, volume.
KIND = "cmlab.kind"
NODE = "cmlab.node"
AZ = "cmlab.az"
ENGINE = "cmlab.engine"
#: The lab's resolved plan, as JSON (on every container).
PLAN = "cmlab.plan"
#: Short hash of the plan, to tell whether a running lab is the one asked for.
DIGEST = "cmlab.digest"


def lab_filter(lab: str) -> dict[str, list[str]]:
    """A Docker API filter matching every object of ``lab``."""
    return {"label": [f"{LAB}={lab}"]}
