set -e
cm_ctl set --param --agent -k agent_heartbeat_timeout=5 -n 2
cm_ctl set --param --agent -k "enable_fence_dn='off'" -n 2
cm_ctl set --param --agent -k "enable_ssl='off'" -n 2
cm_ctl set --param --agent -k disk_timeout=200 -n 2
cm_ctl set --param --agent -k 'event_triggers={"on_start":"/usr/local/opengauss/cmlab/events/on_start.sh","on_stop":"/usr/local/opengauss/cmlab/events/on_stop.sh","on_failover":"/usr/local/opengauss/cmlab/events/on_failover.sh","on_switchover":"/usr/local/opengauss/cmlab/events/on_switchover.sh"}' -n 2
