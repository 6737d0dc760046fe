cm_ctl set --param --agent -k agent_heartbeat_timeout=5 -n 5
cm_ctl set --param --agent -k "enable_fence_dn='off'" -n 5
cm_ctl set --param --agent -k "enable_ssl='off'" -n 5
cm_ctl set --param --agent -k disk_timeout=200 -n 5
