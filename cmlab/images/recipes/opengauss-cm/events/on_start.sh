#!/bin/sh
# CM event trigger 'on_start' (cm_agent event_triggers): one JSON line into the node's
# event file, which cmlab copies into a trial's history. t: seconds since boot
# (/proc/uptime, the host-wide clock of the containers; it matches the host's
# monotonic clock unless the host was suspended).
printf '{"event": "cm-on_start", "t": %s, "node": "%s", "args": "%s"}\n' "$(cut -d' ' -f1 /proc/uptime)" "$CMLAB_NODE" "$*" >> /var/lib/opengauss/cmlab-events.jsonl
