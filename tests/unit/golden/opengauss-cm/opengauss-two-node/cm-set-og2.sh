set -e
grep -qE '^agent_heartbeat_timeout *=' /var/lib/opengauss/cm/cm_agent/cm_agent.conf || echo 'agent_heartbeat_timeout = 5' >> /var/lib/opengauss/cm/cm_agent/cm_agent.conf
cm_ctl set --param --agent -k agent_heartbeat_timeout=5 -n 2
grep -qE '^agent_phony_dead_check_interval *=' /var/lib/opengauss/cm/cm_agent/cm_agent.conf || echo 'agent_phony_dead_check_interval = 10' >> /var/lib/opengauss/cm/cm_agent/cm_agent.conf
cm_ctl set --param --agent -k agent_phony_dead_check_interval=10 -n 2
grep -qE '^enable_fence_dn *=' /var/lib/opengauss/cm/cm_agent/cm_agent.conf || echo 'enable_fence_dn = off' >> /var/lib/opengauss/cm/cm_agent/cm_agent.conf
cm_ctl set --param --agent -k enable_fence_dn=off -n 2
grep -qE '^enable_ssl *=' /var/lib/opengauss/cm/cm_agent/cm_agent.conf || echo 'enable_ssl = off' >> /var/lib/opengauss/cm/cm_agent/cm_agent.conf
cm_ctl set --param --agent -k enable_ssl=off -n 2
grep -qE '^disk_timeout *=' /var/lib/opengauss/cm/cm_agent/cm_agent.conf || echo 'disk_timeout = 200' >> /var/lib/opengauss/cm/cm_agent/cm_agent.conf
cm_ctl set --param --agent -k disk_timeout=200 -n 2
grep -qE '^enable_e2e_rto *=' /var/lib/opengauss/cm/cm_agent/cm_agent.conf || echo 'enable_e2e_rto = 0' >> /var/lib/opengauss/cm/cm_agent/cm_agent.conf
cm_ctl set --param --agent -k enable_e2e_rto=0 -n 2
sed -i '/^unix_socket_directory *=/d' /var/lib/opengauss/cm/cm_agent/cm_agent.conf && echo 'unix_socket_directory = /var/lib/opengauss/tmp' >> /var/lib/opengauss/cm/cm_agent/cm_agent.conf
grep -qE '^event_triggers *=' /var/lib/opengauss/cm/cm_agent/cm_agent.conf || echo 'event_triggers = {"on_start":"/usr/local/opengauss/cmlab/events/on_start.sh","on_stop":"/usr/local/opengauss/cmlab/events/on_stop.sh","on_failover":"/usr/local/opengauss/cmlab/events/on_failover.sh","on_switchover":"/usr/local/opengauss/cmlab/events/on_switchover.sh"}' >> /var/lib/opengauss/cm/cm_agent/cm_agent.conf
cm_ctl set --param --agent -k 'event_triggers={"on_start":"/usr/local/opengauss/cmlab/events/on_start.sh","on_stop":"/usr/local/opengauss/cmlab/events/on_stop.sh","on_failover":"/usr/local/opengauss/cmlab/events/on_failover.sh","on_switchover":"/usr/local/opengauss/cmlab/events/on_switchover.sh"}' -n 2
grep -qE '^instance_heartbeat_timeout *=' /var/lib/opengauss/cm/cm_server/cm_server.conf || echo 'instance_heartbeat_timeout = 6' >> /var/lib/opengauss/cm/cm_server/cm_server.conf
cm_ctl set --param --server -k instance_heartbeat_timeout=6 -n 2
grep -qE '^cmserver_ha_heartbeat_timeout *=' /var/lib/opengauss/cm/cm_server/cm_server.conf || echo 'cmserver_ha_heartbeat_timeout = 6' >> /var/lib/opengauss/cm/cm_server/cm_server.conf
cm_ctl set --param --server -k cmserver_ha_heartbeat_timeout=6 -n 2
grep -qE '^phony_dead_effective_time *=' /var/lib/opengauss/cm/cm_server/cm_server.conf || echo 'phony_dead_effective_time = 5' >> /var/lib/opengauss/cm/cm_server/cm_server.conf
cm_ctl set --param --server -k phony_dead_effective_time=5 -n 2
grep -qE '^dn_arbitrate_mode *=' /var/lib/opengauss/cm/cm_server/cm_server.conf || echo 'dn_arbitrate_mode = quorum' >> /var/lib/opengauss/cm/cm_server/cm_server.conf
cm_ctl set --param --server -k dn_arbitrate_mode=quorum -n 2
sed -i '/^cluster_starting_aribt_delay *=/d' /var/lib/opengauss/cm/cm_server/cm_server.conf && echo 'cluster_starting_aribt_delay = 180' >> /var/lib/opengauss/cm/cm_server/cm_server.conf
grep -qE '^enable_e2e_rto *=' /var/lib/opengauss/cm/cm_server/cm_server.conf || echo 'enable_e2e_rto = 0' >> /var/lib/opengauss/cm/cm_server/cm_server.conf
cm_ctl set --param --server -k enable_e2e_rto=0 -n 2
grep -qE '^enable_ssl *=' /var/lib/opengauss/cm/cm_server/cm_server.conf || echo 'enable_ssl = off' >> /var/lib/opengauss/cm/cm_server/cm_server.conf
cm_ctl set --param --server -k enable_ssl=off -n 2
grep -qE '^disk_timeout *=' /var/lib/opengauss/cm/cm_server/cm_server.conf || echo 'disk_timeout = 200' >> /var/lib/opengauss/cm/cm_server/cm_server.conf
cm_ctl set --param --server -k disk_timeout=200 -n 2
grep -qE '^cms_enable_failover_on2nodes *=' /var/lib/opengauss/cm/cm_server/cm_server.conf || echo 'cms_enable_failover_on2nodes = true' >> /var/lib/opengauss/cm/cm_server/cm_server.conf
cm_ctl set --param --server -k cms_enable_failover_on2nodes=true -n 2
grep -qE '^third_party_gateway_ip *=' /var/lib/opengauss/cm/cm_server/cm_server.conf || echo 'third_party_gateway_ip = 10.213.41.254' >> /var/lib/opengauss/cm/cm_server/cm_server.conf
cm_ctl set --param --server -k third_party_gateway_ip=10.213.41.254 -n 2
grep -qE '^cms_network_isolation_timeout *=' /var/lib/opengauss/cm/cm_server/cm_server.conf || echo 'cms_network_isolation_timeout = 20' >> /var/lib/opengauss/cm/cm_server/cm_server.conf
cm_ctl set --param --server -k cms_network_isolation_timeout=20 -n 2
