"""``parameters:`` of a postgres-patroni lab, with lab defaults.

Sources: ../shared/reference/postgres-patroni.md (patroni@v3.0.2
patroni/config.py for Patroni's own defaults; etcd 3.4 tuning docs).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cmlab.engines.base import ConfigKey, ConfigValue

#: postgresql.conf settings whose value PostgreSQL runs as a shell command or
#: loads as code (PostgreSQL 15 docs, "Server Configuration"): a replayed
#: bundle's need ``--trust-commands``.
COMMAND_SETTINGS = ("archive_command", "archive_library", "archive_cleanup_command", "restore_command",
                    "recovery_end_command", "ssl_passphrase_command", "shared_preload_libraries",
                    "local_preload_libraries", "session_preload_libraries", "dynamic_library_path")


class PatroniParameters(BaseModel):
    """Timing and behaviour of Patroni, etcd and vip-manager.

    The defaults are fast lab values: ttl 10 s, loop_wait 2 s, retry_timeout
    4 s (2 + 2 x 4 = 10 meets Patroni's rule ``loop_wait + 2 x retry_timeout
    <= ttl``, patroni#1579). Patroni's own defaults are 30 / 10 / 10. Patroni
    3.0.2 takes values this low as written; 3.2+ would raise ttl to 20.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttl: int = Field(default=10, ge=2, description="leader lock lifetime, seconds")
    loop_wait: int = Field(default=2, ge=1, description="sleep between HA cycles, seconds")
    retry_timeout: int = Field(default=4, ge=1, description="DCS and PostgreSQL retry window, seconds")
    synchronous_mode: bool = Field(default=True, description="only the leader and the sync standby may be promoted")
    synchronous_mode_strict: bool = Field(default=False, description="block writes when no sync standby is available")
    maximum_lag_on_failover: int = Field(default=1048576, ge=0, description="bytes; laggier replicas stay out of the race")
    primary_start_timeout: int = Field(default=300, ge=0, description="seconds a crashed primary may take to recover in place")
    # Patroni's default, 0, lets a demoting primary wait on its shutdown for as long as
    # it takes; with synchronous replication a walsender to a standby that cannot be
    # reached holds the shutdown checkpoint until wal_sender_timeout (60 s) or the heal,
    # and the demoting node keeps the leader lock all that time (measured here: a
    # primary that lost its etcd endpoint stayed in shutdown 22 s, until the heal).
    primary_stop_timeout: int = Field(default=5, ge=0, description=(
        "seconds a demoting primary's shutdown may take before Patroni kills the postmaster "
        "(synchronous mode only; 0 waits for ever)"))
    vip_interval_ms: int = Field(default=250, ge=50, description="vip-manager's etcd poll interval, milliseconds")
    etcd_heartbeat_ms: int = Field(default=100, ge=10, description="etcd heartbeat interval, milliseconds")
    etcd_election_timeout_ms: int = Field(default=1000, ge=50, description="etcd election timeout, milliseconds")
    # etcd 3.4 (Debian 12) has pre-vote off; 3.5 turned it on by default. Without it a
    # member cut away keeps raising its term, and when it is healed it deposes the
    # leader: an election (quorum reads fail for about a second) after every heal.
    etcd_pre_vote: bool = Field(default=True, description=(
        "etcd's pre-vote phase, so a member that comes back from a partition does not depose the leader"))
    postgresql: dict[ConfigKey, ConfigValue] = Field(
        default_factory=dict, description="extra postgresql.conf parameters (names: letters, digits, _ and one dot; "
                                          "values on one line)"
    )
