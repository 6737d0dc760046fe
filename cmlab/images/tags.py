"""Image tags a lab owns: the images a replay loads from a bundle, tagged
under the replay's lab (made by :mod:`cmlab.replay`, removed by ``down``)."""

from __future__ import annotations

from typing import Any

from docker.errors import DockerException

#: Repository of the tags a replay loads a bundle's images under: ``cmlab-replay/<lab>:<short ID>``.
REPLAY_REPOSITORY = "cmlab-replay"


def replay_tag(lab: str, image_id: str) -> str:
    """The tag a replay loads a bundle's image under: ``cmlab-replay/<lab>:<12 hex digits of its ID>``."""
    return f"{REPLAY_REPOSITORY}/{lab}:{image_id.removeprefix('sha256:')[:12]}"


def remove_replay_tags(client: Any, lab: str) -> int:
    """Remove the tags a replay of ``lab`` loaded images under (the images go
    with them unless another tag of this host holds them). Returns how many."""
    removed = 0
    try:
        for image in client.images.list(name=f"{REPLAY_REPOSITORY}/{lab}"):
            for tag in image.tags:
                if tag.startswith(f"{REPLAY_REPOSITORY}/{lab}:"):
                    client.images.remove(tag)
                    removed += 1
    except DockerException:
        pass  # an image still used by a container stays; `down` removed the lab's containers first
    return removed
