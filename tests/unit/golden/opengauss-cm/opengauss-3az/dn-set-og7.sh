set -e
gs_guc set -D /var/lib/opengauss/data/dn1 -c "replconninfo1='localhost=10.213.33.12 localport=5433 localheartbeatport=5436 remotehost=10.213.31.11 remoteport=5433 remoteheartbeatport=5436'"
gs_guc set -D /var/lib/opengauss/data/dn1 -c "replconninfo2='localhost=10.213.33.12 localport=5433 localheartbeatport=5436 remotehost=10.213.31.12 remoteport=5433 remoteheartbeatport=5436'"
gs_guc set -D /var/lib/opengauss/data/dn1 -c "replconninfo3='localhost=10.213.33.12 localport=5433 localheartbeatport=5436 remotehost=10.213.31.13 remoteport=5433 remoteheartbeatport=5436'"
gs_guc set -D /var/lib/opengauss/data/dn1 -c "replconninfo4='localhost=10.213.33.12 localport=5433 localheartbeatport=5436 remotehost=10.213.32.11 remoteport=5433 remoteheartbeatport=5436'"
gs_guc set -D /var/lib/opengauss/data/dn1 -c "replconninfo5='localhost=10.213.33.12 localport=5433 localheartbeatport=5436 remotehost=10.213.32.12 remoteport=5433 remoteheartbeatport=5436'"
gs_guc set -D /var/lib/opengauss/data/dn1 -c "replconninfo6='localhost=10.213.33.12 localport=5433 localheartbeatport=5436 remotehost=10.213.33.11 remoteport=5433 remoteheartbeatport=5436'"
gs_guc set -D /var/lib/opengauss/data/dn1 -h "host all all 10.213.31.11/32 trust"
gs_guc set -D /var/lib/opengauss/data/dn1 -h "host all all 10.213.31.12/32 trust"
gs_guc set -D /var/lib/opengauss/data/dn1 -h "host all all 10.213.31.13/32 trust"
gs_guc set -D /var/lib/opengauss/data/dn1 -h "host all all 10.213.32.11/32 trust"
gs_guc set -D /var/lib/opengauss/data/dn1 -h "host all all 10.213.32.12/32 trust"
gs_guc set -D /var/lib/opengauss/data/dn1 -h "host all all 10.213.33.11/32 trust"
gs_guc set -D /var/lib/opengauss/data/dn1 -h "host all all 10.213.33.12/32 trust"
gs_guc set -D /var/lib/opengauss/data/dn1 -c remote_read_mode=off
gs_guc set -D /var/lib/opengauss/data/dn1 -c replication_type=1
gs_guc set -D /var/lib/opengauss/data/dn1 -c port=5432
gs_guc set -D /var/lib/opengauss/data/dn1 -c "listen_addresses='*'"
gs_guc set -D /var/lib/opengauss/data/dn1 -c max_connections=1000
gs_guc set -D /var/lib/opengauss/data/dn1 -c max_wal_senders=16
gs_guc set -D /var/lib/opengauss/data/dn1 -c "application_name='dn_6007'"
gs_guc set -D /var/lib/opengauss/data/dn1 -c "synchronous_standby_names='ANY 3(dn_6001,dn_6002,dn_6003,dn_6004,dn_6005,dn_6006)'"
gs_guc set -D /var/lib/opengauss/data/dn1 -c password_encryption_type=1
gs_guc set -D /var/lib/opengauss/data/dn1 -h "host all cmlab 10.213.31.0/24 md5"
gs_guc set -D /var/lib/opengauss/data/dn1 -h "host all cmlab 10.213.32.0/24 md5"
gs_guc set -D /var/lib/opengauss/data/dn1 -h "host all cmlab 10.213.33.0/24 md5"
