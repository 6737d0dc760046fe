"""The runtime's container listing survives a container removed while it lists."""

from unittest import mock

import docker
from docker.errors import NotFound

from cmlab.runtime.docker import DockerRuntime


def test_a_container_removed_between_list_and_inspect_is_skipped():
    # The SDK lists ids, then inspects each; a parallel worker's ``down`` can remove one
    # in between (seen in CI: a 404 from ``reap`` at pytest session start).
    api = mock.MagicMock(spec=docker.APIClient)
    api.containers.return_value = [{"Id": "gone"}, {"Id": "here"}]

    def inspect(cid):
        if cid == "gone":
            raise NotFound("No such container: gone")
        return {"Id": cid, "Name": "/here", "Config": {"Labels": {"cmlab.lab": "x"}}}

    api.inspect_container.side_effect = inspect
    client = docker.DockerClient.__new__(docker.DockerClient)
    client.api = api
    runtime = DockerRuntime(client)
    assert runtime.labs() == ["x"]
    assert [c.name for c in runtime.containers("x")] == ["here"]
