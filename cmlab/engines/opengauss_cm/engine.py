"""Engine ``opengauss-cm``: openGauss with its Cluster Manager (om_monitor,
cm_agent, cm_server, cm_ctl), one container per node, as the community CM
image runs it (../shared/reference/opengauss-cm.md §1).

Status: the topology rules, the generated configuration (cluster XML, conf
overrides, cm_resource.json), the reading of ``cm_ctl query -Cvidp``, the
checked build inputs, the image recipe and the start sequence are done; the
recipe and the start sequence are tested with a synthetic package whose
stand-in executables only record their calls, not yet with real packages.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from pathlib import Path
from collections.abc import Callable
from typing import Any

from cmlab.engines.base import (COMMAND_KEY, BuildInputs, ClusterState, ContainerSpec, Engine, FileSpec, ImageRecipe, NodeAccess,
                                NodeRole, NodeState, Snapshot, Timing)
from cmlab.engines.opengauss_cm import config, warm
from cmlab.engines.opengauss_cm.parameters import HOST_INPUTS, CmParameters
from cmlab.engines.opengauss_cm.query import NOT_CONNECTED, CmQuery, CmQueryParseError, parse
from cmlab.engines.opengauss_cm.reader import QueryStream
from cmlab.engines.opengauss_cm.omm import as_omm, as_omm_script, command
from cmlab.engines.opengauss_cm.package import OpenGaussInputs, inspect as inspect_package
from cmlab.engines.opengauss_cm.show import CmShow, parse_show
from cmlab.errors import EngineError, ImageBuildError, Issue, LabError
from cmlab.images.build import folder_digest
from cmlab.topology.plan import LabPlan, NodePlan
from cmlab.topology.schema import Role, Topology

_ROLES = {"Primary": NodeRole.primary, "Standby": NodeRole.standby, "Main Standby": NodeRole.standby,
          "Cascade Standby": NodeRole.cascade_standby, "Down": NodeRole.down}
OMM_UID = 70  # the community image's omm user (uid/gid 70)
#: Lab password of the database (and of omm), as GS_PASSWORD sets both in the community image.
PASSWORD = "Cmlab@123"


#: Build-context names of the inputs, in the order :func:`inspect_package` returns their paths.
_INPUT_NAMES = {"all": ("package.tar",), "separate": ("server.tar", "cm.tar"), "tree": ("tree",)}


def _inputs(p: CmParameters) -> OpenGaussInputs:
    """The user's openGauss inputs (parameters, else CMLAB_OPENGAUSS_PACKAGE and CMLAB_OPENGAUSS_OM), checked.

    :raises ImageBuildError: as :func:`cmlab.engines.opengauss_cm.package.inspect`.
    """
    given = p.package or os.environ.get("CMLAB_OPENGAUSS_PACKAGE")
    om = p.om_package or os.environ.get("CMLAB_OPENGAUSS_OM")
    return inspect_package(Path(given) if given else None, Path(p.cm_package) if p.cm_package else None,
                           p.package_sha256, p.cm_package_sha256, Path(om) if om else None, p.om_package_sha256)


#: cm_agent checks a DN it finds stopped (T state, SIGSTOP) for "phony dead" this many seconds
#: apart, whatever agent_phony_dead_check_interval says: ``g_agentCheckTStatusInterval = 36``
#: (CM/src/cm_agent/cma_global_params.cpp, used in cma_phony_dead_check.cpp:
#: DnPhonyDeadStatusCheck), not a setting.
T_STATE_CHECK_INTERVAL_S = 36


def frozen_primary_bound(p: CmParameters, failover_s: float) -> float:
    """Seconds from a primary DN's SIGSTOP to writes on a primary again, at most.

    Without ``enable_e2e_rto`` (CM's default) the agent's first phony-dead check comes within
    ``agent_phony_dead_check_interval``, each next one :data:`T_STATE_CHECK_INTERVAL_S` later;
    cm_server sends the restart once ``phony_dead_effective_time`` checks in a row found it
    (cm_server/cms_global_params.cpp: DealDnPhonyDead); then a failover's worth of time.
    With ``enable_e2e_rto`` the agent checks every second and stops a T-state DN at once
    (cma_common.cpp, cma_phony_dead_check.cpp: DnPhonyDeadProcessE2E), then as a killed DN.
    """
    if p.enable_e2e_rto:
        return 1.0 + failover_s
    return float(p.agent_phony_dead_check_interval
                 + (p.phony_dead_effective_time - 1) * max(T_STATE_CHECK_INTERVAL_S, p.agent_phony_dead_check_interval)
                 + failover_s)


class OpenGaussCm(Engine):
    name = "opengauss-cm"
    summary = "openGauss + Cluster Manager (needs the user's openGauss packages, or an image that holds them)"
    Parameters = CmParameters
    processes = {"database": "gaussdb", "agent": "cm_agent", "quorum": "cm_server", "monitor": "om_monitor"}
    # Each reading is a `docker exec cm_ctl query`: measured here, 40 ms and about 15 ms of
    # CPU across cmlab, dockerd and containerd for the exec alone (runc and cm_ctl besides).
    min_reading_interval_s = 0.2
    #: Read ``cm_ctl query`` from one long-lived exec (False: an exec a reading, as
    #: before; ``ci/bench_probes.py --exec-readings`` compares the two).
    stream_readings = True
    recipe = ImageRecipe(name="opengauss-cm", folder="opengauss-cm")
    #: The host's name, which cmlab sets to the node's name. Not pgxc_node_str(): a standby's
    #: build copies the primary's pgxc_node_name, so every DN named itself after the first
    #: primary (seen on the real binaries: og2 and og3 answered 'og1').
    node_identity_sql = "get_hostname()"
    #: om_monitor refuses to start below 640000 open files (CM/src/cm_monitor/monitor_main.cpp:
    #: LIMIT_OPEN_FILE); cmlab-cm-start reads the number from CMLAB_CM_MONITOR_OPEN_FILES.
    open_files_wanted = (640000, "om_monitor cannot run, so each node's start script keeps cm_agent alive as om_monitor would")
    host_inputs = HOST_INPUTS
    warm_start = warm.CmWarmStart()

    def command_parameters(self, params: dict[str, Any]) -> list[str]:
        """CM's overrides whose value it runs (``event_triggers`` scripts and the like, by key word)."""
        return [f"{part}.{key}" for part in ("cm_agent", "cm_server") for key in params.get(part, {})
                if COMMAND_KEY.search(key)]

    def check(self, topo: Topology, params: dict[str, Any]) -> list[Issue]:
        p = CmParameters.model_validate(params)
        issues: list[Issue] = []
        names = {n.name for n in topo.nodes}
        dns = [n for n in topo.nodes if Role.database in n.roles]
        cms = [n for n in topo.nodes if Role.quorum in n.roles]
        if not dns:
            issues.append(Issue("nodes", "no node has role 'database' (a DN)", "give the 'database' role to at least one node"))
        if len(dns) > config.MAX_STANDBYS + 1:
            issues.append(Issue("nodes", f"{len(dns)} DNs: CM supports a primary and at most {config.MAX_STANDBYS} standbys",
                                f"keep at most {config.MAX_STANDBYS + 1} database nodes"))
        if p.two_node:
            if len(dns) != 2:
                issues.append(Issue("parameters.two_node", f"two-node mode needs exactly 2 database nodes, not {len(dns)}",
                                    "use 2 database nodes, or set two_node: false"))
        elif len(cms) < 3:
            issues.append(Issue("nodes", f"{len(cms)} node(s) have role 'quorum' (a CMS); CM needs a majority of at least 3",
                                "give the 'quorum' role to at least 3 nodes, or use two_node: true with 2 nodes"))
        for i, n in enumerate(topo.nodes):
            if Role.quorum not in n.roles:
                issues.append(Issue(f"nodes[{i}].roles", f"node '{n.name}' has no role 'quorum': OM's gs_om -t generateconf "
                                    "(6.0.0) requires a cm_server on every node (openGauss-OM gspylib/common/"
                                    "DbClusterInfo.py: __getCmsCountFromWhichConfiguredNode; seen on the real binaries)",
                                    "add 'quorum' to its roles"))
        if p.primary and p.primary not in {n.name for n in dns}:
            issues.append(Issue("parameters.primary", f"'{p.primary}' is not a database node", "name a node with role 'database'"))
        for i, c in enumerate(p.cascade_standbys):
            if c not in {n.name for n in dns}:
                issues.append(Issue(f"parameters.cascade_standbys[{i}]", f"'{c}' is not a database node", "name a node with role 'database'"))
        if p.cascade_standbys and len(dns) - len(p.cascade_standbys) < 3:
            issues.append(Issue("parameters.cascade_standbys", "a cascade standby needs one primary and two standbys besides it",
                                "add database nodes or drop the cascade standby"))
        # "the cascaded standby node must be configured with a standby node in the same AZ"
        # (openGauss docs, Installation Guide, the XML configuration file: cascadeRole).
        primary = p.primary or (dns[0].name if dns else None)
        for i, c in enumerate(p.cascade_standbys):
            node = next((n for n in dns if n.name == c), None)
            if node is None:
                continue
            standbys = [n.name for n in dns if n.az == node.az and n.name != primary and n.name not in p.cascade_standbys]
            if not standbys:
                issues.append(Issue(f"parameters.cascade_standbys[{i}]", f"cascade standby '{c}' has no standby in its AZ '{node.az}' "
                                    "(openGauss: a cascade standby is configured with a standby of its AZ)",
                                    f"add a database node to AZ '{node.az}' or move '{c}' to an AZ with a standby"))
        if p.sync_num > max(0, len(dns) - 1 - len(p.cascade_standbys)):
            issues.append(Issue("parameters.sync_num", f"sync_num {p.sync_num} exceeds the standbys that can be synchronous",
                                "lower sync_num"))
        disks = {d.name: d for d in topo.disks}
        for key in ("voting_disk", "share_disk"):
            name = getattr(p, key)
            if name is None:
                continue
            if name not in disks:
                issues.append(Issue(f"parameters.{key}", f"no disk '{name}' in disks:", "add it under disks: (kind: block)"))
            elif disks[name].kind != "block":
                issues.append(Issue(f"parameters.{key}", f"disk '{name}' is a filesystem; CM's disks are raw devices", "use kind: block"))
            elif disks[name].nodes and set(disks[name].nodes) != names:
                issues.append(Issue(f"parameters.{key}", f"disk '{name}' must be on every node (CM needs the same device everywhere)",
                                    "drop its nodes: list"))
        if p.share_disk is not None:
            # CM 6.0.0's share-disk DDB (ddb_type=2) takes the CMS lock with cm_persist, a SCSI-3 COMPARE
            # AND WRITE or NVMe compare (CM/src/cm_persist/share_disk_lock.cpp: CmDiskLock); a loop device
            # answers neither, so no cm_server ever becomes primary (seen on the real binaries).
            issues.append(Issue("parameters.share_disk", "CM's share-disk store (ddb_type=2) locks the disk with SCSI-3 "
                                "COMPARE AND WRITE or NVMe compare, and cmlab's disks are loop devices, which support "
                                "neither: no cm_server would become primary",
                                "drop share_disk; dn_arbitrate_mode: share_disk with a voting_disk keeps DCC as the CMS store"))
        if p.installed_gausshome or p.installed_gphome:
            if not p.base_image:
                issues.append(Issue("parameters.installed_gausshome", "an installed openGauss is read from base_image, and none is given",
                                    "set base_image to the image that holds openGauss and CM"))
            if not (p.installed_gausshome and p.installed_gphome):
                issues.append(Issue("parameters.installed_gausshome", "an installed openGauss needs both its GAUSSHOME and the OM tools' GPHOME",
                                    "set installed_gausshome and installed_gphome"))
            if p.package or p.cm_package:
                issues.append(Issue("parameters.package", "both a package and an installed openGauss in base_image are given",
                                    "drop package (and cm_package), or drop installed_gausshome/installed_gphome"))
        for key in ("installed_gausshome", "installed_gphome"):
            value = getattr(p, key)
            if value and not value.startswith("/"):
                issues.append(Issue(f"parameters.{key}", f"'{value}' is not an absolute path", "give the path inside base_image, from /"))
        if p.package:
            try:
                _inputs(p)
            except ImageBuildError as exc:
                issues.append(Issue("parameters.package", str(exc), "point it at the openGauss release package or install tree"))
        if p.dn_arbitrate_mode == "share_disk" and not p.voting_disk:
            issues.append(Issue("parameters.dn_arbitrate_mode", "share_disk mode needs a voting disk (each cm_agent's heartbeat)",
                                "set voting_disk to a block disk of disks:"))
        return issues

    def build_inputs(self, plan: LabPlan) -> BuildInputs:
        """The user's package (``parameters.package`` or CMLAB_OPENGAUSS_PACKAGE),
        checked, as the build context's ``inputs/`` (see images/opengauss-cm);
        or nothing but the paths, when ``base_image`` already holds openGauss
        and CM. ``base_image`` replaces cmlab's Debian base."""
        p = CmParameters.model_validate(plan.parameters)
        if p.installed_gausshome and p.installed_gphome:
            return BuildInputs(args={"CMLAB_INPUT_KIND": "installed", "CMLAB_GAUSSHOME": p.installed_gausshome,
                                     "CMLAB_GPHOME": p.installed_gphome}, base_image=p.base_image)
        found = _inputs(p)
        files = {f"inputs/{name}": path for name, path in zip(_INPUT_NAMES[found.kind], found.paths)}
        if found.om is not None:
            files["inputs/om" if found.om.is_dir() else "inputs/om.tar"] = found.om
        # package.py hashes the files; a directory's contents are hashed here.
        dirs = [d for d in (*found.paths, found.om) if d is not None and d.is_dir()]
        digest = hashlib.sha256("".join([found.digest, *map(folder_digest, dirs)]).encode()).hexdigest() if dirs else found.digest
        return BuildInputs(files, {"CMLAB_INPUT_KIND": found.kind}, digest, base_image=p.base_image)

    def container(self, plan: LabPlan, node: NodePlan) -> ContainerSpec:
        p = CmParameters.model_validate(plan.parameters)
        files = {config.CLUSTER_XML: FileSpec(config.cluster_xml(plan, p), uid=OMM_UID, gid=OMM_UID)}
        resources = config.resource_json(plan, p)
        if resources:
            files["/etc/cmlab/cm_resource.json"] = FileSpec(resources, uid=OMM_UID, gid=OMM_UID)
        files["/etc/cmlab/cm-set.sh"] = _set_script(config.set_commands(plan, p, node.name))
        if node.has(Role.database):
            files["/etc/cmlab/dn-set.sh"] = _script(config.dn_commands(plan, p, node.name))
        return ContainerSpec(
            command=["/usr/local/bin/cmlab-cm-start"],
            env={"CMLAB_CM_NODE_ID": str(config.node_id(plan, node.name)),
                 "CMLAB_CM_DATABASE": "1" if node.has(Role.database) else "0",
                 "CMLAB_CM_DN_PORT": str(p.dn_port), "CMLAB_CM_PORT": str(p.cm_server_port),
                 "CMLAB_CM_MONITOR_OPEN_FILES": str(self.open_files_wanted[0]),
                 # omm must open the voting and share disks: cmlab-cm-start gives them to it.
                 "CMLAB_CM_DISKS": " ".join(d.path for d in plan.disks_of(node.name) if d.kind == "block"),
                 "GS_PASSWORD": PASSWORD},
            files=files,
            volumes={warm.MOUNT: warm.VOLUME},
            # The community image's run settings (opengauss-cm.md §1 "docker run flags").
            sysctls={"kernel.sem": "250 6400000 1000 25600"},
            security_opt=["seccomp=unconfined"],
            ulimits={"nofile": (1000000, 1000000)},
            cap_add=["NET_ADMIN", "NET_RAW"],  # CM moves the VIP with ifconfig/ip and arping (§5)
        )

    def collect_events(self, plan: LabPlan, access: NodeAccess) -> list[dict[str, Any]]:
        """The event-trigger lines of every running node (see images/opengauss-cm/events/)."""
        out: list[dict[str, Any]] = []
        for node in plan.nodes:
            if not access.running(node):
                continue
            code, text = access.exec(node, ["cat", config.EVENTS_FILE])
            if code != 0:
                continue
            for line in text.splitlines():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def prepare_clients(self, plan: LabPlan, access: NodeAccess, primary: str) -> None:
        """The probes' SQL user (its md5 access rules are in each DN's first
        settings: :func:`config.client_settings`)."""
        p = CmParameters.model_validate(plan.parameters)
        for statement in config.client_sql(PASSWORD):
            code, out = access.exec(plan.node(primary), as_omm(["gsql", "-d", "postgres", "-p", str(p.dn_port), "-c", statement]))
            if code != 0 and "already exists" not in out:
                raise EngineError(f"{primary}: {statement.split(' PASSWORD')[0]} failed: {out.strip()[-300:]}")

    def timing(self, plan: LabPlan) -> Timing:
        p = CmParameters.model_validate(plan.parameters)
        # Node loss: instance_heartbeat_timeout, about 6 arbitration rounds of ~1 s, the
        # failover itself, and DCC re-election when the CMS primary went too (§8: 12-20 s).
        failover = p.instance_heartbeat_timeout + 6 + 5 + 2 * p.cmserver_ha_heartbeat_timeout
        if p.two_node:
            # The survivor's CMS cannot reach DCC's other member: it counts
            # cms_network_isolation_timeout monitor rounds of 1 s before DCC works as a
            # minority of one and it can be primary and fail the DN over
            # (cms_monitor_main.cpp: CheckDdbClusterStatusOn2Nodes, DoDdbStatusCheckAndSet).
            failover += p.cms_network_isolation_timeout
        phony = frozen_primary_bound(p, failover)
        # Every node runs its own gs_initdb and CM then rebuilds each standby from the primary,
        # about a minute a standby on a 2-core host (seen on the real binaries: 7 nodes took
        # over 300 s), so the start deadline grows with the standbys.
        standbys = max(len(plan.nodes_with(Role.database)) - 1, 0)
        return Timing(start_s=120.0 + p.cluster_starting_aribt_delay + 60.0 * standbys, failover_s=float(failover),
                      vip_s=5.0 + 2.0, vip_repair_s=float(p.agent_heartbeat_timeout + 10), poll_s=0.5,
                      frozen_primary_s=float(phony))

    def dsn(self, plan: LabPlan, host: str) -> str:
        p = CmParameters.model_validate(plan.parameters)
        return f"host={host} port={p.dn_port} user={config.CLIENT_USER} password={PASSWORD} dbname=postgres"

    # ---- observation through cm_ctl ------------------------------------------------------

    def query(self, plan: LabPlan, access: NodeAccess) -> CmQuery:
        """``cm_ctl query -Cvidp`` from the first running node that answers.

        :raises EngineError: no node could run it, or what it printed cannot be read (an
            empty or cut output is a cluster not ready, not a crash of the caller's wait).
        """
        out = self._cm_ctl(plan, access, ["query", "-Cvidp"])
        try:
            return parse(out)
        except CmQueryParseError as exc:
            raise EngineError(f"cm_ctl query -Cvidp printed what cannot be read ({exc}): {out.strip()[-200:]!r}") from exc

    def _cm_ctl(self, plan: LabPlan, access: NodeAccess, args: list[str]) -> str:
        """``cm_ctl <args>`` as omm on the first running node whose cm_ctl reaches a CMS.

        :raises EngineError: none did (with the last output).
        """
        return self._cm_ctl_on(plan, access, args)[1]

    def _cm_ctl_on(self, plan: LabPlan, access: NodeAccess, args: list[str]) -> tuple[str, str]:
        """:meth:`_cm_ctl`, with the name of the node that answered."""
        last = "no node is running"
        for node in plan.nodes:
            if not access.running(node):
                continue
            code, out = access.exec(node, as_omm(["cm_ctl", *args]))
            if code == 0 and NOT_CONNECTED not in out:
                return node.name, out
            last = out.strip()[-200:]
        raise EngineError(f"cm_ctl {' '.join(args)} failed on every node: {last}")

    def switchover(self, plan: LabPlan, access: NodeAccess, candidate: str) -> None:
        """``cm_ctl switchover -n NODEID -D DATADIR -t SECONDS`` for the
        candidate's DN, run as omm on the candidate's node (reference
        opengauss-cm.md §7: the only switchover form in a quorum cluster;
        ``ctl_switchover.cpp``). cm_ctl waits for the switch itself, at most
        the engine's failover time in seconds; once, never retried elsewhere.

        :raises EngineError: not a database node, its node is not running, or
            cm_ctl refused or timed out (its output in the message).
        """
        node = plan.node(candidate)
        if not node.has(Role.database):
            raise EngineError(f"{candidate} runs no DN: a switchover needs a database node")
        if not access.running(node):
            raise EngineError(f"{candidate} is not running")
        seconds = str(int(self.timing(plan).failover_s))
        code, out = access.exec(node, as_omm(["cm_ctl", "switchover", "-n", str(config.node_id(plan, candidate)),
                                              "-D", config.DN_DIR, "-t", seconds]))
        if code != 0:
            raise EngineError(f"cm_ctl switchover to {candidate} failed (exit {code}): {out.strip()[-400:]}")

    def show(self, plan: LabPlan, access: NodeAccess) -> CmShow:
        """``cm_ctl show``: network and disk heartbeats as the CMS sees them,
        and which node holds each float IP (CM/src/cm_ctl/ctl_show.cpp).

        :raises EngineError: no node could run it.
        """
        return parse_show(self._cm_ctl(plan, access, ["show"]))

    def diagnostics(self, plan: LabPlan, access: NodeAccess) -> dict[str, str]:
        out = {}
        for args in (["query", "-Cvidp"], ["show"]):
            try:
                out["cm_ctl " + " ".join(args)] = self._cm_ctl(plan, access, args)
            except (EngineError, LabError) as exc:
                out["cm_ctl " + " ".join(args)] = f"(failed: {exc})"
        return out

    def observe(self, plan: LabPlan, access: NodeAccess) -> ClusterState:
        running = {n.name: access.running(n) for n in plan.nodes}
        try:
            q = self.query(plan, access)
        except EngineError as exc:
            return ClusterState(tuple(NodeState(n.name, NodeRole.down if not running[n.name] else NodeRole.unknown, False,
                                                detail=str(exc)[:80]) for n in plan.nodes), not_ready=str(exc))
        states = _states(plan, q, running)
        not_ready = "" if q.cluster_state == "Normal" and len(q.primaries()) == 1 else f"cluster_state {q.cluster_state}"
        return ClusterState(tuple(states), not_ready=not_ready)

    def snapshot_reader(self, plan: LabPlan, access: NodeAccess) -> Callable[[], Snapshot]:
        """One ``cm_ctl query -Cvidp`` gives the leader and every node's state
        (a node it does not list is ``unknown``). Read from a loop in one node
        through one long-lived exec (:class:`.reader.QueryStream`) where the
        runtime can stream, else by an exec a reading; the callable's ``close()``
        ends the loop."""
        args = ["query", "-Cvidp"]

        def fallback() -> tuple[str, CmQuery]:
            node, out = self._cm_ctl_on(plan, access, args)
            return node, parse(out)

        stream = getattr(access, "stream", None) if self.stream_readings else None
        if stream is None:
            def read_by_exec() -> Snapshot:
                return _snapshot(plan, fallback()[1])

            return read_by_exec
        queries = QueryStream(lambda node, script: stream(plan.node(node), as_omm_script(script)),
                              lambda node, argv: access.exec(plan.node(node), argv),
                              fallback, interval_s=self.min_reading_interval_s, deadline_s=10.0)
        return _StreamedSnapshots(plan, queries)

    def leader(self, plan: LabPlan, access: NodeAccess) -> str | None:
        """The DN node CM reports as Primary (the CMS primary's view)."""
        primaries = self.query(plan, access).primaries()
        return primaries[0].node if len(primaries) == 1 else None

    def observe_node(self, plan: LabPlan, node: NodePlan, access: NodeAccess) -> NodeState:
        state = self.observe(plan, access).node(node.name)
        return state or NodeState(node.name, NodeRole.unknown, False)

    def quorum_leader(self, plan: LabPlan, access: NodeAccess) -> str | None:
        try:
            primary = self.query(plan, access).cms_primary()
        except EngineError:
            return None
        return primary.node if primary else None

    def cascade_standbys(self, plan: LabPlan) -> list[str]:
        return list(CmParameters.model_validate(plan.parameters).cascade_standbys)

    def upstream(self, plan: LabPlan, access: NodeAccess, node: str) -> str | None:
        """The node whose DN ``node``'s walreceiver connects to: the remote address of its
        ``channel``, ``local:port<--remote:port`` (openGauss-server
        src/gausskernel/storage/replication/walreceiver.cpp: pg_stat_get_wal_receiver)."""
        p = CmParameters.model_validate(plan.parameters)
        code, out = access.exec(plan.node(node), as_omm(["gsql", "-d", "postgres", "-p", str(p.dn_port), "-At", "-c",
                                                         "select channel from pg_stat_get_wal_receiver()"]))
        return upstream_of_channel(plan, out) if code == 0 else None


def upstream_of_channel(plan: LabPlan, output: str) -> str | None:
    """The node whose address is the remote end of a walreceiver ``channel`` in ``output``."""
    by_address = {str(n.address): n.name for n in plan.nodes}
    for line in output.splitlines():
        if "<--" in line:
            remote = line.strip().rsplit("<--", 1)[1].rsplit(":", 1)[0]
            return by_address.get(remote)
    return None


def _snapshot(plan: LabPlan, q: CmQuery) -> Snapshot:
    primaries = q.primaries()
    return Snapshot(primaries[0].node if len(primaries) == 1 else None, tuple(_states(plan, q, None)))


class _StreamedSnapshots:
    """The probes' reading callable over a :class:`QueryStream` (``close()`` ends it)."""

    def __init__(self, plan: LabPlan, queries: QueryStream) -> None:
        self.plan, self.queries = plan, queries

    def __call__(self) -> Snapshot:
        return _snapshot(self.plan, self.queries.read())

    def close(self) -> None:
        self.queries.close()


def _states(plan: LabPlan, q: CmQuery, running: dict[str, bool] | None) -> list[NodeState]:
    """Each node's state as the CMS reports it in ``q``; with ``running``
    (node -> container running), a node whose container is not running is ``down``."""
    by_node = {d.node: d for d in q.datanodes}
    states = []
    for n in plan.nodes:
        d = by_node.get(n.name)
        if running is not None and not running[n.name]:
            states.append(NodeState(n.name, NodeRole.down, False, detail="container not running"))
        elif d is None:
            cms = next((c for c in q.cms if c.node == n.name), None)
            states.append(NodeState(n.name, NodeRole.quorum, cms is not None and cms.state in ("Primary", "Standby"),
                                    detail=f"CMS {cms.state}" if cms else "no CMS"))
        else:
            states.append(NodeState(n.name, _ROLES.get(d.dynamic_role, NodeRole.unknown), d.state == "Normal",
                                    detail=f"{d.state}{f' ({d.detail})' if d.detail else ''}"))
    return states


def _script(commands: list[list[str]]) -> FileSpec:
    """A shell script of omm's that runs ``commands`` in order (cmlab-cm-start runs it)."""
    text = "set -e\n" + "\n".join(command(argv) for argv in commands) + "\n"
    return FileSpec(text, mode=0o755, uid=OMM_UID, gid=OMM_UID)


def _set_script(commands: list[list[str]]) -> FileSpec:
    """:func:`_script` of ``cm_ctl set --param`` commands. cm_ctl set rewrites only
    keys the conf file has (CM/src/cm_ctl/ctl_guc.cpp), and the installed samples
    lack some, so a missing key is first added, then set and checked by cm_ctl.
    What cm_ctl refuses (:func:`config.written_directly`: some keys, and values
    such as paths) is written into the file the same way, without it."""
    lines = []
    for argv in commands:
        part, (key, value) = argv[3].removeprefix("--"), argv[5].split("=", 1)
        conf = f"{config.CM_DIR}/cm_{part}/cm_{part}.conf"
        line, pattern = shlex.quote(f"{key} = {value}"), shlex.quote(f"^{key} *=")
        if config.written_directly(part, key, value):
            lines.append(f"sed -i {shlex.quote(f'/^{key} *=/d')} {conf} && echo {line} >> {conf}")
            continue
        lines.append(f"grep -qE {pattern} {conf} || echo {line} >> {conf}")
        lines.append(command(argv))
    return FileSpec("set -e\n" + "\n".join(lines) + "\n", mode=0o755, uid=OMM_UID, gid=OMM_UID)

