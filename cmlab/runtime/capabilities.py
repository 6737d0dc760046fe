"""What this host can do, probed, never assumed (``cmlab doctor``; the
faults check what they need here).

Kernel features are probed in a scratch network namespace that is removed
at once: a qdisc or nftables expression the kernel lacks fails there, not in
a lab. Each capability says what it enables and, when missing, why.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cmlab.errors import Unsupported


@dataclass(frozen=True)
class Capability:
    name: str
    ok: bool
    detail: str
    #: What it enables.
    enables: str


def _run(argv: list[str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=20)


#: An nftables script using what partitions and loss use (numgen), made and deleted.
NFT_PROBE = ("add table inet cmlab_probe\n"
             "add chain inet cmlab_probe c { type filter hook output priority 0 ; }\n"
             "add rule inet cmlab_probe c numgen random mod 100 < 1 drop\n"
             "delete table inet cmlab_probe\n")
#: The same probes as :func:`_scratch_netns_probe`, as one shell script for a
#: remote host's helper: in a throwaway network namespace (``unshare --net``),
#: gone when the script ends. Prints ``<name> ok|no <detail>`` per line.
REMOTE_PROBE = f"""unshare --net sh -c '
ip link set lo up
printf %s "{NFT_PROBE}" | nft -f - 2>/tmp/e && echo "nft ok nftables with numgen works" || echo "nft no $(cat /tmp/e)"
tc qdisc add dev lo root handle c1ab: tbf rate 1mbit burst 32768 latency 100ms 2>/tmp/e && echo "tbf ok kernel qdisc present" \
  && tc qdisc del dev lo root || echo "tbf no the kernel has no tbf qdisc: $(cat /tmp/e)"
tc qdisc add dev lo root handle c1ab: netem delay 1ms 2>/tmp/e && echo "netem ok kernel qdisc present" \
  && tc qdisc del dev lo root || echo "netem no the kernel has no netem qdisc: $(cat /tmp/e)"
'"""


def remote_probe(runner: Callable[[list[str]], subprocess.CompletedProcess]) -> dict[str, tuple[bool, str]]:
    """nft, tbf and netem probed on a remote host, through its helper (see
    :data:`REMOTE_PROBE`); ``name -> (ok, detail)``."""
    proc = runner(["sh", "-c", REMOTE_PROBE])
    out = {}
    for line in proc.stdout.splitlines():
        name, _, rest = line.partition(" ")
        verdict, _, detail = rest.partition(" ")
        if name in ("nft", "tbf", "netem"):
            out[name] = (verdict == "ok", detail.strip())
    for name in ("nft", "tbf", "netem"):
        out.setdefault(name, (False, f"the probe did not run: {proc.stderr.strip() or proc.stdout.strip()}"))
    return out


#: What each probed kernel feature enables.
PROBED = (("nft", "partitions and packet loss"), ("tbf", "bandwidth limits"), ("netem", "delay and jitter"))


def _scratch_netns_probe() -> dict[str, tuple[bool, str]]:
    """Try nftables (numgen), tbf and netem in a throwaway namespace."""
    from pyroute2 import NetNS, netns
    from pyroute2.netlink.exceptions import NetlinkError

    name = f"cmlab-probe-{os.getpid()}"
    out: dict[str, tuple[bool, str]] = {}
    try:
        netns.create(name)
    except Exception as exc:  # noqa: BLE001 - any failure means: cannot probe
        reason = f"cannot create a network namespace ({exc})"
        return {k: (False, reason) for k in ("nft", "tbf", "netem")}
    try:
        ns = NetNS(name)
        try:
            # The namespace's own loopback: no link kind (dummy, veth) needs to exist.
            index = ns.link_lookup(ifname="lo")[0]
            ns.link("set", index=index, state="up")
            for kind, args in (("tbf", {"rate": "1mbit", "burst": 32768, "latency": "100ms"}), ("netem", {"delay": 1000})):
                try:
                    ns.tc("add", kind, index, handle=0xC1AB0000, **args)
                    ns.tc("del", index=index, handle=0xC1AB0000, parent=0xFFFFFFFF)
                    out[kind] = (True, "kernel qdisc present")
                except NetlinkError as exc:
                    out[kind] = (False, f"the kernel has no '{kind}' qdisc (sch_{kind} is neither built in nor loadable: {exc})")
        finally:
            ns.close()
        if shutil.which("nft"):
            proc = _run(["ip", "netns", "exec", name, "nft", "-f", "-"], stdin=NFT_PROBE)
            out["nft"] = (proc.returncode == 0, "nftables with numgen works" if proc.returncode == 0 else proc.stderr.strip())
        else:
            out["nft"] = (False, "the nft command is missing (apt-get install nftables)")
    finally:
        netns.remove(name)
    return out


@functools.lru_cache(maxsize=1)
def capabilities() -> dict[str, Capability]:
    """Every capability, probed once per process."""
    caps: list[Capability] = []
    root = os.geteuid() == 0
    caps.append(Capability("root", root, "running as root" if root else f"running as uid {os.geteuid()}: faults enter container namespaces and need root",
                           "every network, process and VIP fault"))
    try:
        from cmlab.runtime.client import connect

        info = connect().info()
        caps.append(Capability("docker", True, f"Docker {info.get('ServerVersion')}", "labs"))
        swarm = (info.get("Swarm") or {}).get("LocalNodeState", "inactive")
        caps.append(Capability("swarm", swarm == "active", f"swarm {swarm}", "overlay networks across hosts"))
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        caps.append(Capability("docker", False, str(exc), "labs"))
    for tool, pkg, enables in (("nsenter", "util-linux", "entering container namespaces"),
                               ("arping", "iputils-arping", "informational: ARP checks by hand (GARP faults use a raw socket)"),
                               ("losetup", "mount", "loop-device disks")):
        path = shutil.which(tool)
        caps.append(Capability(tool, path is not None, path or f"missing (apt-get install {pkg})", enables))
    if root:
        probed = _scratch_netns_probe()
    else:
        probed = {k: (False, "needs root to probe") for k in ("nft", "tbf", "netem")}
    for name, enables in PROBED:
        ok, detail = probed[name]
        caps.append(Capability(name, ok, detail, enables))
    caps.append(_open_files())
    loop = Path("/dev/loop-control").exists()
    caps.append(Capability("loop", loop, "/dev/loop-control present" if loop else "no /dev/loop-control (modprobe loop)", "voting and shared disks"))
    v2 = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    caps.append(Capability("cgroup2", v2, "cgroup v2" if v2 else "cgroup v1", "informational: pause and freeze work on both"))
    return {c.name: c for c in caps}


def daemon_hard_limit(name: str) -> int | None:
    """The Docker daemon's hard limit for ``name`` (``nofile`` only), which a
    container cannot exceed; None when it cannot be read (not on this host)."""
    if name != "nofile":
        return None
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() != "dockerd":
                continue
            for line in (comm.parent / "limits").read_text().splitlines():
                if line.startswith("Max open files"):
                    return int(line.split()[4])
        except (OSError, ValueError, IndexError):
            continue
    return None


def _open_files() -> Capability:
    """The Docker daemon's cap on a container's open files, against what each
    engine's processes insist on (:attr:`Engine.open_files_wanted`)."""
    from cmlab.engines.registry import default_registry

    cap = daemon_hard_limit("nofile")
    if cap is None:
        return Capability("open-files", True, "the Docker daemon's limit cannot be read (no dockerd on this host)", "informational")
    registry = default_registry()
    demands = {name: registry.get(name).open_files_wanted for name in registry.names()}
    short = {name: d for name, d in demands.items() if d is not None and d[0] > cap}
    if not short:
        return Capability("open-files", True, f"containers may open {cap} files", "every engine's processes")
    detail = "; ".join(f"{name} wants {want}: {fallback}" for name, (want, fallback) in short.items())
    return Capability("open-files", False, f"the Docker daemon caps containers at {cap} open files; {detail} "
                      "(raise LimitNOFILE of docker.service to lift the cap)", "every engine's processes as their manager runs them")


def require(names: frozenset[str], what: str) -> None:
    """Raise :class:`Unsupported` naming what ``what`` needs and this host lacks."""
    caps = capabilities()
    missing = [caps[n] for n in sorted(names) if n in caps and not caps[n].ok]
    if missing:
        raise Unsupported(f"{what} is not possible on this host: " + "; ".join(f"{c.name}: {c.detail}" for c in missing))
