"""Runtime: the lab's Docker objects (networks, volumes, containers, router)."""
