"""Warm start of an opengauss-cm lab: one base backup of the primary DN,
restored into every database node; CM's own state starts empty.

Why: on a fresh ``up`` every node runs its own ``gs_initdb``, so each
standby's system identifier differs from the primary's and cm_server rebuilds
it (``Need repair(System id not matched)``, then a full ``gs_ctl build``):
about a minute a standby on a 2-core host, one after the other. Restored, the
DNs share the primary's data and CM has nothing to build.

Saved: ``gs_basebackup -X stream`` of the running primary DN (openGauss's own
consistent copy: nothing stops), into the primary's volume, from where the
runtime copies it into the snapshot.

Restored: that copy into the ``opengauss`` volume of every database node.
``cmlab-cm-start`` finds a data directory (no ``gs_initdb``) and runs the
node's ``dn-set.sh`` all the same, which writes this lab's addresses and the
node's own names into it (``replconninfoN``, ``pg_hba.conf``,
``application_name``, ``synchronous_standby_names``); ``gs_om -t
generateconf`` writes the static configuration from this lab's cluster XML
as on a fresh start. cm_agent starts each DN in pending mode, cm_server
(with an empty DCC store, as on a first start) promotes the static primary
and the others stream from it: the same WAL position, the same system
identifier, no build.

Not saved: CM's directory (``cm_agent.conf``, ``cm_server.conf`` and the DCC
store under ``/var/lib/opengauss/cm``): the store holds the members'
addresses and the dynamic configuration of the lab that made it, and the
conf files are written anew from the plan at every start.
"""

from __future__ import annotations

from cmlab.engines.base import NodeAccess, PrimaryBackup
from cmlab.engines.opengauss_cm import config
from cmlab.engines.opengauss_cm.omm import as_omm_script
from cmlab.engines.opengauss_cm.parameters import CmParameters
from cmlab.errors import EngineError
from cmlab.topology.plan import LabPlan

#: The node volume (a suffix of the container's volumes) and where it is mounted.
VOLUME = "opengauss"
MOUNT = "/var/lib/opengauss"


class CmWarmStart(PrimaryBackup):
    format = 1
    volume, mount = VOLUME, MOUNT

    def backup(self, plan: LabPlan, access: NodeAccess, primary: str, root: str) -> None:
        """``gs_basebackup`` of ``primary``'s DN as omm over its local socket,
        with a fast checkpoint.

        :raises EngineError: gs_basebackup failed (its output in the message).
        """
        p = CmParameters.model_validate(plan.parameters)
        data = root + config.DN_DIR.removeprefix(MOUNT)
        script = "\n".join([
            "set -eu",
            f"rm -rf {root}",
            f"install -d -m 0700 {data}",
            f"gs_basebackup -D {data} -h {config.TMP} -p {p.dn_port} -X stream -c fast",
        ])
        rc, out = access.exec(plan.node(primary), as_omm_script(script))
        if rc != 0:
            raise EngineError(f"{primary}: the base backup for the snapshot failed (exit {rc}): {out.strip()[-500:]}")
