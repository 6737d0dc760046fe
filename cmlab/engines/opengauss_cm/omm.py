"""Commands run as omm, the openGauss user, inside a node: quoting as CM's
docs write it and omm's login environment (written by ``cmlab-cm-start``)."""

from __future__ import annotations

import shlex


def as_omm_script(script: str) -> list[str]:
    """Run a bash script as omm with the openGauss environment (see :func:`as_omm`)."""
    return ["runuser", "-u", "omm", "--", "bash", "-lc", script]


def as_omm(argv: list[str]) -> list[str]:
    """Run ``argv`` as omm with the openGauss environment (its login profile,
    written by cmlab-cm-start)."""
    return as_omm_script(command(argv))


def command(argv: list[str]) -> str:
    """``argv`` as one shell line, each word quoted by :func:`shell`."""
    return " ".join(shell(a) for a in argv)


def shell(arg: str) -> str:
    """Quote for sh as CM's docs write it: ``-k enable_ssl="'off'"``."""
    if all(c.isalnum() or c in "-_=./" for c in arg):
        return arg
    if not any(c in arg for c in '"$`\\'):
        return f'"{arg}"'
    return shlex.quote(arg)
