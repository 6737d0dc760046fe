set -e
cm_ctl set --param --agent -k agent_heartbeat_timeout=5 -n 2
cm_ctl set --param --agent -k "enable_fence_dn='off'" -n 2
cm_ctl set --param --agent -k "enable_ssl='off'" -n 2
cm_ctl set --param --agent -k disk_timeout=200 -n 2
cm_ctl set --param --agent -k 'event_triggers={"on_start":"/usr/local/opengauss/cmlab/events/on_start.sh","on_stop":"/usr/local/opengauss/cmlab/events/on_stop.sh","on_failover":"/usr/local/opengauss/cmlab/events/on_failover.sh","on_switchover":"/usr/local/opengauss/cmlab/events/on_switchover.sh"}' -n 2
cm_ctl set --param --server -k instance_heartbeat_timeout=6 -n 2
cm_ctl set --param --server -k cmserver_ha_heartbeat_timeout=6 -n 2
cm_ctl set --param --server -k "dn_arbitrate_mode='quorum'" -n 2
cm_ctl set --param --server -k cluster_starting_aribt_delay=180 -n 2
cm_ctl set --param --server -k enable_e2e_rto=0 -n 2
cm_ctl set --param --server -k "enable_ssl='off'" -n 2
cm_ctl set --param --server -k disk_timeout=200 -n 2
cm_ctl set --param --server -k "cms_enable_failover_on2nodes='true'" -n 2
cm_ctl set --param --server -k "third_party_gateway_ip='10.213.41.254'" -n 2
