cm_ctl set --param --agent -k agent_heartbeat_timeout=5 -n 3
cm_ctl set --param --agent -k "enable_fence_dn='off'" -n 3
cm_ctl set --param --agent -k "enable_ssl='off'" -n 3
cm_ctl set --param --agent -k disk_timeout=200 -n 3
