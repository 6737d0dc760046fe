"""The opengauss-cm image and start sequence, with a SYNTHETIC package.

The package built here is not openGauss: its executables are stand-ins that
only record how they were called (and create the few files the next step
reads). It exists to test cmlab's recipe (unpacking the All package's inner
tarballs) and the start sequence (gs_initdb, gs_om generateconf, cm_ctl set
for the node's own id, the VIP resources, om_monitor kept alive), and is used
for nothing else. The real CM is tested when CMLAB_OPENGAUSS_PACKAGE points
at real packages (issue 6's e2e suite, still to come).
"""

from __future__ import annotations

import gzip
import io
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from cmlab.api import Lab
from cmlab.engines.opengauss_cm import config
from cmlab.engines.opengauss_cm.parameters import CmParameters
from cmlab.errors import LabError
from cmlab.runtime.capabilities import daemon_hard_limit
from cmlab.wait import wait_for

from .conftest import ROOT, assert_lab_gone

pytestmark = pytest.mark.docker

RECORD = '#!/bin/sh\necho "$(basename "$0") $*" >> /var/lib/opengauss/calls.log\n'
STANDINS = {
    "server": {
        "bin/gaussdb": RECORD, "bin/gs_ctl": RECORD, "bin/gs_guc": RECORD,
        "bin/gs_initdb": RECORD + 'while [ $# -gt 0 ]; do [ "$1" = -D ] && mkdir -p "$2" && touch "$2/PG_VERSION"; shift; done\n',
    },
    "cm": {
        "bin/cm_ctl": RECORD, "bin/cm_agent": RECORD, "bin/cm_server": RECORD,
        "bin/om_monitor": RECORD + "exec sleep 100000\n",
        "share/config/cm_agent.conf.sample": "agent_heartbeat_timeout = 5\n",
        "share/config/cm_server.conf.sample": "instance_heartbeat_timeout = 6\n",
    },
    "om": {
        # OM is Python: cmlab-gs-om runs script/gs_om in its own interpreter.
        "script/gs_om": ("import os, socket, sys\n"
                         "with open('/var/lib/opengauss/calls.log', 'a') as f:\n"
                         "    f.write(' '.join([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + '\\n')\n"
                         "d = os.path.join(os.environ['GPHOME'], 'script', 'static_config_files')\n"
                         "os.makedirs(d, exist_ok=True)\n"
                         "open(os.path.join(d, 'cluster_static_config_' + socket.gethostname()), 'w').close()\n"),
    },
}


def _tar(members: dict[str, str], mode: str) -> bytes:
    """A tarball whose bytes depend on ``members`` only (no times), so that the
    package, and so the image built from it, is the same every run."""
    buf = io.BytesIO()
    if mode == "w:gz":
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
            gz.write(_tar(members, "w"))
        return buf.getvalue()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def synthetic_all_package(path: Path, standins: dict[str, dict[str, str]] = STANDINS) -> Path:
    inner = {
        "openGauss-Server-0.0.0-synthetic.tar.bz2": _tar(standins["server"], "w:bz2"),
        "openGauss-CM-0.0.0-synthetic.tar.gz": _tar(standins["cm"], "w:gz"),
        "openGauss-OM-0.0.0-synthetic.tar.gz": _tar(standins["om"], "w:gz"),
    }
    outer = io.BytesIO()
    with tarfile.open(fileobj=outer, mode="w") as tar:
        for name, data in inner.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with open(path, "wb") as f, gzip.GzipFile(filename="", fileobj=f, mode="wb", mtime=0) as gz:
        gz.write(outer.getvalue())
    return path


def kept_alive(lab: Lab) -> str:
    """The process the start script keeps alive: om_monitor where the Docker daemon lets a
    container open the files it insists on; elsewhere cm_agent, as om_monitor would."""
    cap = daemon_hard_limit("nofile")
    wanted, _ = lab.engine.open_files_wanted
    return "om_monitor" if cap is None or cap >= wanted else "cm_agent"


@contextmanager
def synthetic_lab(tmp_path: Path, name: str, standins: dict[str, dict[str, str]] = STANDINS) -> Iterator[Lab]:
    package = synthetic_all_package(tmp_path / "openGauss-All-0.0.0-synthetic.tar.gz", standins)
    data = yaml.safe_load((ROOT / "topologies" / "opengauss-1az.yaml").read_text())
    data.update(name=name)
    data["parameters"]["package"] = str(package)
    path = tmp_path / "cm.yaml"
    path.write_text(yaml.safe_dump(data))
    lab = Lab.from_topology(path, allocate=True)
    try:
        yield lab
    finally:
        lab.down()
        assert_lab_gone(lab)


@pytest.fixture
def lab(docker_client, tmp_path):
    with synthetic_lab(tmp_path, "e2e-cm-synth") as lab:
        yield lab


#: What the dynamic loader prints when a binary needs a symbol no library gives (seen on a
#: real CM built against a libdcc.so that no longer exported CBB's cs_tcp_recv).
UNLOADABLE = '#!/bin/sh\necho "$0: symbol lookup error: $0: undefined symbol: cs_tcp_recv" >&2\nexit 127\n'


def test_a_cm_agent_the_loader_refuses_fails_up_at_once_with_its_error(docker_client, tmp_path):
    standins = {**STANDINS, "cm": {**STANDINS["cm"], "bin/cm_agent": UNLOADABLE}}
    with synthetic_lab(tmp_path, "e2e-cm-unloadable", standins) as lab:
        if kept_alive(lab) != "cm_agent":
            pytest.skip("om_monitor keeps cm_agent alive on this host (open files allowed), not cmlab-cm-start")
        started = time.monotonic()
        with pytest.raises(LabError, match="stopped while the lab was starting") as err:
            lab.up()
        # Without the check, up waited its whole start deadline (420 s for this lab).
        assert time.monotonic() - started < lab.timing.start_s / 2
        assert "cm_agent cannot run" in str(err.value) and "undefined symbol: cs_tcp_recv" in str(err.value)


def test_the_image_unpacks_the_all_package_and_each_node_starts_the_cm_stack_in_order(lab: Lab):
    lab.up(wait=False)
    p = CmParameters.model_validate(lab.plan.parameters)

    def calls(node: str) -> list[str]:
        _, out = lab.exec(node, ["cat", "/var/lib/opengauss/calls.log"])
        return [line for line in out.splitlines() if line and not line.startswith("cat:")]

    keeper = kept_alive(lab)
    for node in lab.plan.nodes:
        seen, _ = wait_for(lambda: calls(node.name), lambda c: any(x.startswith(keeper) for x in c), 60, 0.5,
                           f"{keeper} started on {node.name}")
        names = [c.split()[0] for c in seen]
        # what cm_ctl refuses is written into the conf file, not through cm_ctl
        n_set = sum(1 for argv in config.set_commands(lab.plan, p, node.name)
                    if not config.written_directly(argv[3].removeprefix("--"), *argv[5].split("=", 1)))
        n_guc = len(config.dn_commands(lab.plan, p, node.name))
        assert names[:3 + n_guc + n_set] == ["gs_initdb", *(["gs_guc"] * n_guc), "gs_om", *(["cm_ctl"] * n_set), keeper], seen
        assert seen[1] == f"gs_guc set -D {config.DN_DIR} -c replconninfo1='localhost={node.address} localport=5433 " \
                          f"localheartbeatport=5436 remotehost={lab.plan.nodes[1 if node.name == 'og1' else 0].address} " \
                          "remoteport=5433 remoteheartbeatport=5436'"
        if keeper == "cm_agent":
            assert seen[2 + n_guc + n_set] == "cm_agent abnormal"
        seen = [seen[0], *seen[1 + n_guc:]]
        _, said = lab.exec(node.name, ["cat", "/var/lib/opengauss/cmlab-keeper"])
        assert said.split()[0] == ("om_monitor" if keeper == "om_monitor" else "cmlab"), said
        assert seen[0] == f"gs_initdb -D {config.DN_DIR} --nodename={node.name} -w Cmlab@123"
        assert seen[1] == "gs_om -t generateconf -X /home/omm/cluster.xml"
        nid = str(config.node_id(lab.plan, node.name))
        assert all(c.endswith(f"-n {nid}") for c in seen[2:2 + n_set]), "cm_ctl set must name the node's own id"
        code, out = lab.exec(node.name, ["cat", f"{config.CM_DIR}/cm_agent/cm_resource.json"])
        assert code == 0 and '"resources_type": "VIP"' in out
        code, out = lab.exec(node.name, ["stat", "-c", "%U", f"{config.CM_DIR}/cm_agent/cm_resource.json"])
        assert out.strip() == "omm"
    code, out = lab.exec("og1", ["cat", "/etc/cmlab/packages.txt"])
    assert "input: All package (openGauss-Server-0.0.0-synthetic.tar.bz2" in out
    _, env = lab.exec("og1", ["runuser", "-u", "omm", "--", "env", "-i", "HOME=/home/omm", "bash", "-c",
                                 "source ~/.bashrc; echo $GAUSS_ENV $PGHOST $GAUSSHOME"])
    assert env.split() == ["2", "/var/lib/opengauss/tmp", "/usr/local/opengauss/app"], \
        "OM sources omm's .bashrc from a non-interactive shell: the environment must come before Debian's early return"
    _, sh = lab.exec("og1", ["readlink", "-f", "/bin/sh"])
    assert sh.strip() == "/usr/bin/bash", "OM runs `source` through /bin/sh"


def test_omm_login_environment_finds_the_cm_tools(lab: Lab):
    """The engine runs cm_ctl and gsql as omm through its login profile."""
    from cmlab.engines.opengauss_cm.engine import as_omm

    lab.up(wait=False)
    wait_for(lambda: lab.exec("og1", ["test", "-e", "/home/omm/.cmlab-env"])[0], lambda c: c == 0, 60, 0.5, "omm's environment")
    code, out = lab.exec("og1", as_omm(["cm_ctl", "query", "-Cvidp"]))
    assert code == 0, out
    _, calls = lab.exec("og1", ["cat", "/var/lib/opengauss/calls.log"])
    assert "cm_ctl query -Cvidp" in calls


def test_cm_event_triggers_reach_the_trial_history(lab: Lab):
    """An event script, as cm_agent would run it, is read back by the engine
    with a time on the host's clock."""
    import time

    lab.up(wait=False)
    t0 = time.monotonic()
    code, out = lab.exec("og2", ["/usr/local/opengauss/cmlab/events/on_failover.sh", "6002"], user="omm")
    assert code == 0, out
    events = lab.engine.collect_events(lab.plan, lab.runtime.access(lab.plan))
    mine = [e for e in events if e["event"] == "cm-on_failover"]
    assert len(mine) == 1 and mine[0]["node"] == "og2" and mine[0]["args"] == "6002"
    assert abs(mine[0]["t"] - t0) < 5, "the event's time is on the host's monotonic clock"


def _installed_image(client, tag: str) -> None:
    """A user's image that already holds openGauss (the stand-ins) under
    /opt/og, with an omm user of another uid, as a user's own build image may."""
    from cmlab.images.build import ImageBuilder

    base = ImageBuilder(client).base().tag
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        files = {f"og/app/{k}": v for k, v in {**STANDINS["server"], **STANDINS["cm"]}.items()}
        files.update({f"og/tools/{k}": v for k, v in STANDINS["om"].items()})
        files["Dockerfile"] = (f"FROM {base}\nRUN groupadd --gid 1234 omm && useradd --uid 1234 --gid 1234 -m omm\n"
                               "COPY og /opt/og\n")
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o755
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    client.images.build(fileobj=context, custom_context=True, tag=tag, rm=True, network_mode="host")


def test_a_base_image_that_holds_opengauss_needs_no_package(docker_client, tmp_path):
    tag = "cmlab-test/opengauss-installed:synthetic"
    _installed_image(docker_client, tag)
    data = yaml.safe_load((ROOT / "topologies" / "opengauss-1az.yaml").read_text())
    data.update(name="e2e-cm-installed")
    data["parameters"].update(base_image=tag, installed_gausshome="/opt/og/app", installed_gphome="/opt/og/tools")
    data["parameters"].pop("package", None)
    path = tmp_path / "cm.yaml"
    path.write_text(yaml.safe_dump(data))
    lab = Lab.from_topology(path, allocate=True)
    engine_image = None
    try:
        lab.up(wait=False)
        engine_image = lab.runtime.container(lab.plan.nodes[0]).image.id
        keeper = kept_alive(lab)
        seen, _ = wait_for(lambda: lab.exec("og1", ["cat", "/var/lib/opengauss/calls.log"])[1], lambda c: keeper in c,
                           60, 0.5, f"{keeper} started from the image's own install")
        assert seen.splitlines()[0].startswith("gs_initdb -D")
        code, out = lab.exec("og1", ["cat", "/etc/cmlab/packages.txt"])
        assert "input: installed in the base image (GAUSSHOME /opt/og/app, GPHOME /opt/og/tools)" in out
        code, out = lab.exec("og1", ["id", "-u", "omm"])
        assert out.strip() == "70", "omm gets the uid cmlab writes its files with"
        code, out = lab.exec("og1", ["stat", "-c", "%U", "/opt/og/app/bin/cm_ctl"])
        assert out.strip() == "omm"
    finally:
        lab.down()
        assert_lab_gone(lab)
        for image in (engine_image, tag):
            if image:
                docker_client.images.remove(image, force=True)


def test_a_base_image_that_is_not_here_is_refused_with_how_to_get_it(tmp_path):
    from cmlab.errors import ImageBuildError

    data = yaml.safe_load((ROOT / "topologies" / "opengauss-1az.yaml").read_text())
    data.update(name="e2e-cm-nobase")
    data["parameters"].update(base_image="openeuler/openeuler:22.03-lts", installed_gausshome="/usr/local/opengauss/app",
                              installed_gphome="/usr/local/opengauss/tools")
    data["parameters"].pop("package", None)
    path = tmp_path / "cm.yaml"
    path.write_text(yaml.safe_dump(data))
    lab = Lab.from_topology(path, allocate=True)
    with pytest.raises(ImageBuildError, match=r"not on this Docker engine; `docker pull openeuler/openeuler:22.03-lts`.*docker load"):
        lab.up(wait=False)
    assert_lab_gone(lab)
