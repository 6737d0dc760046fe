"""Warm start of a postgres-patroni lab: one base backup of the primary,
restored into every database node; etcd starts empty.

Saved: ``pg_basebackup -X stream`` of the running primary (PostgreSQL's own
consistent copy: nothing stops), into the primary's data volume, recovered
there once in single-user mode (so that its ``pg_control`` says "shut down"
and Patroni does not run that recovery on every node at every restore), from
where the runtime copies it into the snapshot.

Restored: that backup into the data volume of every database node. Each
Patroni finds a data directory and no cluster in etcd, starts PostgreSQL as a
standby (``standby.signal``), and the healthiest takes the leader key and
promotes; the others follow it (they are at the same WAL position, so they
stream the new timeline at once). Patroni then writes ``/initialize`` (the
data's system identifier) and ``/config`` (from ``patroni.dynamic.json`` in
the data directory) back into etcd. Which node becomes primary is Patroni's
race, as on a fresh ``up``.

Start-up only: a restored standby asks the new primary for its replication
slot before Patroni has made it (Patroni makes slots on the leader's next HA
loop), and PostgreSQL then waits ``wal_retrieve_retry_interval`` (5 s by
default) before asking again. The backup's ``postgresql.auto.conf`` sets
:data:`START_RETRY` for the start, and :meth:`PatroniWarmStart.started`
resets it on every node (``ALTER SYSTEM RESET`` and a reload) before ``up``
returns: the lab then runs with PostgreSQL's default, as a fresh one does.

Addresses: the data directory's ``postgresql.conf`` (``listen_addresses``,
``primary_conninfo``) and ``pg_hba.conf`` (the AZ subnets) carry the lab that
made the backup, and Patroni writes both anew from ``patroni.yml`` when it
starts; replication slots are not in a base backup (Patroni makes them for
the members it finds). etcd is not saved: a member's data directory holds its
cluster ID and its peers' URLs, and Debian's vip-manager needs the v2 store,
which etcd's v3 snapshots leave out.
"""

from __future__ import annotations

import shlex

from cmlab.engines.base import NodeAccess, PrimaryBackup
from cmlab.engines.postgres_patroni import config
from cmlab.errors import EngineError
from cmlab.topology.plan import LabPlan
from cmlab.topology.schema import Role

#: The data volume (a suffix of the container's volumes) and where it is mounted.
VOLUME = "pgdata"
MOUNT = "/var/lib/postgresql"
#: ``wal_retrieve_retry_interval`` while a restored lab starts (PostgreSQL's default: 5 s).
START_RETRY = "200ms"


class PatroniWarmStart(PrimaryBackup):
    format = 4
    volume, mount = VOLUME, MOUNT

    def backup(self, plan: LabPlan, access: NodeAccess, primary: str, root: str) -> None:
        """``pg_basebackup`` of ``primary`` over its local replication
        connection (trusted in ``pg_hba.conf``), with a fast checkpoint.

        :raises EngineError: pg_basebackup failed (its output in the message).
        """
        data = root + config.DATA_DIR.removeprefix(MOUNT)
        d = shlex.quote(data)
        script = "\n".join([
            "set -eu",
            f"rm -rf {root}",
            f"install -d -m 0755 {root}",
            f"{config.BIN_DIR}/pg_basebackup -h 127.0.0.1 -p {config.PG_PORT} -U {config.REPLICATION[0]} "
            f"-D {d} -X stream -c fast --no-manifest --no-sync",
            # Recover the backup now, once: Patroni would do it on every node at each restore.
            f"{config.BIN_DIR}/postgres --single -D {d} -c archive_mode=off postgres </dev/null",
            # After a clean shut-down only the segments from the last checkpoint's on are
            # needed (the older ones would go at the next checkpoint): less to copy.
            f"redo=$({config.BIN_DIR}/pg_controldata {d} | sed -n 's/^Latest checkpoint.s REDO WAL file: *//p')",
            'test -n "$redo"',
            f"for f in $(ls {d}/pg_wal | grep -E '^[0-9A-F]{{24}}$'); do",
            '  [ "$f" = "$redo" ] && break',
            f'  rm -f {d}/pg_wal/"$f"',
            "done",
            f"echo \"wal_retrieve_retry_interval = '{START_RETRY}'\" >> {d}/postgresql.auto.conf",
        ])
        rc, out = access.exec(plan.node(primary), ["sh", "-c", script], user="postgres")
        if rc != 0:
            raise EngineError(f"{primary}: the base backup for the snapshot failed (exit {rc}): {out.strip()[-500:]}")

    def started(self, plan: LabPlan, access: NodeAccess) -> None:
        """``ALTER SYSTEM RESET wal_retrieve_retry_interval`` and a reload on
        every database node (allowed on a standby: it writes no WAL).

        :raises EngineError: a node refused (its output in the message).
        """
        sql = ["-c", "ALTER SYSTEM RESET wal_retrieve_retry_interval", "-c", "SELECT pg_reload_conf()"]
        for node in plan.nodes_with(Role.database):
            rc, out = access.exec(node, ["psql", "-X", "-q", "-h", "/var/run/postgresql", "-p", str(config.PG_PORT),
                                         "-U", config.SUPERUSER[0], "-d", "postgres", *sql], user="postgres")
            if rc != 0:
                raise EngineError(f"{node.name}: could not reset wal_retrieve_retry_interval after the warm start "
                                  f"(exit {rc}): {out.strip()[-300:]}")
