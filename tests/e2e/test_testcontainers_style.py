"""cmlab from a suite written in testcontainers-python's style, with unittest
rather than pytest fixtures: the lab is started in ``setUpClass``, reached
through ``get_connection_url()``, faulted through the same object, measured
with a scenario run, and removed in ``tearDownClass``."""

from __future__ import annotations

import os
import unittest

import psycopg
import pytest

from cmlab.testcontainers import ClusterReady, CmlabCluster

from .conftest import assert_lab_gone, needs_root

pytestmark = [pytest.mark.docker, needs_root]


class KillThePrimaryInTestcontainersStyle(unittest.TestCase):
    cluster: CmlabCluster

    @classmethod
    def setUpClass(cls) -> None:
        name = f"e2e-tc-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"[:20]
        # The library's own wait-strategy knobs; 300 s is the engine's start deadline here.
        cls.cluster = CmlabCluster("quickstart", name=name).waiting_for(ClusterReady().with_startup_timeout(300))
        cls.cluster.start()

    @classmethod
    def tearDownClass(cls) -> None:
        cls.cluster.stop()
        assert_lab_gone(cls.cluster.lab)

    def test_1_a_client_writes_through_the_connection_url(self) -> None:
        url = self.cluster.get_connection_url()
        vip = str(self.cluster.lab.plan.vips[0].address)
        self.assertIn(f"@{vip}:", url)  # quickstart has a VIP: the URL goes through it
        with psycopg.connect(url, connect_timeout=10, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS tc_style (v int)")
            conn.execute("INSERT INTO tc_style VALUES (1)")
            self.assertEqual(conn.execute("SELECT count(*) FROM tc_style").fetchone()[0], 1)

    def test_2_a_fault_holds_inside_its_block_and_is_healed_after_it(self) -> None:
        standby = next(n.name for n in self.cluster.lab.status().cluster.nodes
                       if n.role.value.endswith("standby"))

        def state() -> str:
            code, out = self.cluster.lab.exec(standby, ["ps", "-o", "stat=", "-C", "postgres"])
            self.assertEqual(code, 0, out)
            return out.split()[0]

        with self.cluster.fault("freeze", target=standby, process="database") as fault:
            self.assertEqual(fault.nodes, (standby,))
            self.assertTrue(state().startswith("T"), "the standby's postgres is stopped while the fault holds")
        self.assertTrue(fault.healed)
        self.assertFalse(state().startswith("T"), "and runs again once the block is left")
        self.assertEqual(self.cluster.lab.nemesis().active(), [])

    def test_3_a_measured_run_keeps_its_promises(self) -> None:
        run = self.cluster.run("kill-primary", seed=7)
        self.assertTrue((run.directory / "report.html").is_file())
        metrics = run.trials[0].metrics
        self.assertIsNotNone(metrics.client_rto_s, "the clients were back on a primary")
        self.assertEqual(metrics.lost_writes, [])
        self.assertTrue(run.passed, run.report["trials"][0]["verdicts"])
