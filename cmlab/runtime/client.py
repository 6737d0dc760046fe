"""The Docker Engine connection, with a clear error when there is none."""

from __future__ import annotations

import docker
from docker.errors import DockerException

from cmlab.errors import DockerUnavailable


def connect(timeout_s: float = 120) -> docker.DockerClient:
    """A client for the Docker Engine named by the environment (DOCKER_HOST or
    the local socket).

    :param timeout_s: per-request timeout, seconds.
    :raises DockerUnavailable: Docker is not installed, not running, or this
        user may not use it.
    """
    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
    except DockerException as exc:
        raise DockerUnavailable(
            "cannot reach the Docker Engine: is Docker installed and running, and may this user use it "
            f"(root or the 'docker' group)? ({exc})"
        ) from None
    return client
