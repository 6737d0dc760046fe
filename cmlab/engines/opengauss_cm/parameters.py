"""``parameters:`` of an opengauss-cm lab.

Defaults are CM's own (../shared/reference/opengauss-cm.md §3, from
``CM/src/cm_agent/cm_agent.centralized.conf.sample`` and
``cm_server.centralized.conf.sample``) unless a lab default is named.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cmlab.engines.base import ConfigKey, ConfigValue

#: Parameters that name a file, folder or image on the host cmlab runs on.
HOST_INPUTS = ("package", "cm_package", "om_package", "base_image")


class CmParameters(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    package: str | None = Field(default=None, description="the All package, the server package or an install tree (CMLAB_OPENGAUSS_PACKAGE otherwise)")
    package_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$", description="SHA-256 the package must have")
    cm_package: str | None = Field(default=None, description="the CM package, when the server package comes alone")
    cm_package_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    om_package: str | None = Field(default=None, description="OM (openGauss-OM-*.tar.gz, or a directory with script/gs_om), "
                                   "with a server package or an install tree (CMLAB_OPENGAUSS_OM otherwise)")
    om_package_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    base_image: str | None = Field(default=None, description="an image to build on instead of cmlab's Debian base: "
                                   "openEuler, CentOS or Debian, already here (docker pull or docker load it first)")
    installed_gausshome: str | None = Field(default=None, description="base_image already holds openGauss and CM: their "
                                            "GAUSSHOME in it (no package then)")
    installed_gphome: str | None = Field(default=None, description="with installed_gausshome: the OM tools' GPHOME (gs_om)")
    primary: str | None = Field(default=None, description="the node whose DN starts as primary (default: the first database node)")
    cascade_standbys: list[str] = Field(default_factory=list, description="database nodes whose DN is a cascade standby")
    sync_num: int = Field(default=1, ge=0, description="dataNode1_syncNum: synchronous standbys")
    dn_port: int = Field(default=5432, ge=1024, le=65000, description="DN port (the DN also uses port+1 and port+4)")
    cm_server_port: int = Field(default=25000, ge=1024, le=65000, description="cmServerPortBase (CM also uses +1 and +2)")
    most_available_sync: bool = Field(default=False, description="the DNs' most_available_sync: a primary with no synchronous "
                                      "standby left acknowledges writes alone instead of waiting (openGauss's default: off). "
                                      "Without it a two-node cluster's survivor is promoted but acknowledges nothing until "
                                      "its peer is back (seen on the real binaries)")
    two_node: bool = Field(default=False, description="two-node mode: cms_enable_failover_on2nodes, the router (or AZ gateway) as third_party_gateway_ip")
    cms_network_isolation_timeout: int = Field(default=20, ge=10, description="two-node mode: cm_server monitor rounds "
                                               "(about 1 s each) a CMS that lost its peer waits before DCC works as a "
                                               "minority of one and it can act alone")
    dn_arbitrate_mode: Literal["quorum", "paxos", "share_disk"] = "quorum"
    voting_disk: str | None = Field(default=None, description="name of a block disk (topology disks:) used as voting disk")
    share_disk: str | None = Field(default=None, description="name of a block disk used as share disk (ddb_type=2)")
    enable_fence_dn: bool = False
    instance_heartbeat_timeout: int = Field(default=6, ge=1, description="cm_server, seconds")
    agent_heartbeat_timeout: int = Field(default=5, ge=1, description="cm_agent, seconds")
    cmserver_ha_heartbeat_timeout: int = Field(default=6, ge=1, description="cm_server, seconds")
    agent_phony_dead_check_interval: int = Field(default=10, ge=1, description="cm_agent: how often it checks its DN for "
                                                 "'phony dead' (alive, not answering), seconds")
    phony_dead_effective_time: int = Field(default=5, ge=1, description="cm_server: phony-dead checks in a row before it acts")
    disk_timeout: int = Field(default=200, ge=1, description="voting-disk heartbeat timeout, seconds")
    cluster_starting_aribt_delay: int = Field(default=180, ge=0, description="seconds cm_server waits for the static primary at start (CM spells it 'aribt')")
    enable_e2e_rto: bool = False
    event_triggers: bool = Field(default=True, description="record CM's on_start/on_stop/on_failover/on_switchover in the trials' history")
    cm_agent: dict[ConfigKey, ConfigValue] = Field(default_factory=dict, description="more cm_agent.conf overrides")
    cm_server: dict[ConfigKey, ConfigValue] = Field(default_factory=dict, description="more cm_server.conf overrides")

    @field_validator("cm_agent", "cm_server")
    @classmethod
    def _no_comment(cls, value: dict[str, object]) -> dict[str, object]:
        # cm_agent.conf and cm_server.conf have no quoting (CM keeps quotes as part of the value):
        # a '#' would end the value there, and cm_ctl set refuses it (CM/src/cm_ctl/ctl_param_check.cpp).
        for key, v in value.items():
            if isinstance(v, str) and "#" in v:
                raise ValueError(f"{key}: CM's configuration files have no quoting, so a '#' would end the value there")
        return value
