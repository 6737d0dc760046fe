set -e
grep -qE '^agent_heartbeat_timeout *=' /var/lib/opengauss/cm/cm_agent/cm_agent.conf || echo 'agent_heartbeat_timeout = 5' >> /var/lib/opengauss/cm/cm_agent/cm_agent.conf
cm_ctl set --param --agent -k agent_heartbeat_timeout=5 -n 4
grep -qE '^agent_phony_dead_check_interval *=' /var/lib/opengauss/cm/cm_agent/cm_agent.conf || echo 'agent_phony_dead_check_interval = 10' >> /var/lib/opengauss/cm/cm_agent/cm_agent.conf
cm_ctl set --param --agent -k agent_phony_dead_check_interval=10 -n 4
grep -qE '^enable_fence_dn *=' /var/lib/opengauss/cm/cm_agent/cm_agent.conf || echo 'enable_fence_dn = '"'"'off'"'"'' >> /var/lib/opengauss/cm/cm_agent/cm_agent.conf
cm_ctl set --param --agent -k "enable_fence_dn='off'" -n 4
grep -qE '^enable_ssl *=' /var/lib/opengauss/cm/cm_agent/cm_agent.conf || echo 'enable_ssl = '"'"'off'"'"'' >> /var/lib/opengauss/cm/cm_agent/cm_agent.conf
cm_ctl set --param --agent -k "enable_ssl='off'" -n 4
grep -qE '^disk_timeout *=' /var/lib/opengauss/cm/cm_agent/cm_agent.conf || echo 'disk_timeout = 200' >> /var/lib/opengauss/cm/cm_agent/cm_agent.conf
cm_ctl set --param --agent -k disk_timeout=200 -n 4
grep -qE '^unix_socket_directory *=' /var/lib/opengauss/cm/cm_agent/cm_agent.conf || echo 'unix_socket_directory = '"'"'/var/lib/opengauss/tmp'"'"'' >> /var/lib/opengauss/cm/cm_agent/cm_agent.conf
cm_ctl set --param --agent -k "unix_socket_directory='/var/lib/opengauss/tmp'" -n 4
grep -qE '^event_triggers *=' /var/lib/opengauss/cm/cm_agent/cm_agent.conf || echo 'event_triggers = {"on_start":"/usr/local/opengauss/cmlab/events/on_start.sh","on_stop":"/usr/local/opengauss/cmlab/events/on_stop.sh","on_failover":"/usr/local/opengauss/cmlab/events/on_failover.sh","on_switchover":"/usr/local/opengauss/cmlab/events/on_switchover.sh"}' >> /var/lib/opengauss/cm/cm_agent/cm_agent.conf
cm_ctl set --param --agent -k 'event_triggers={"on_start":"/usr/local/opengauss/cmlab/events/on_start.sh","on_stop":"/usr/local/opengauss/cmlab/events/on_stop.sh","on_failover":"/usr/local/opengauss/cmlab/events/on_failover.sh","on_switchover":"/usr/local/opengauss/cmlab/events/on_switchover.sh"}' -n 4
