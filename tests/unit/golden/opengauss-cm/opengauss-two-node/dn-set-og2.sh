set -e
gs_guc set -D /var/lib/opengauss/data/dn1 -c "replconninfo1='localhost=10.213.42.11 localport=5433 localheartbeatport=5436 remotehost=10.213.41.11 remoteport=5433 remoteheartbeatport=5436'"
gs_guc set -D /var/lib/opengauss/data/dn1 -h "host all all 10.213.41.11/32 trust"
gs_guc set -D /var/lib/opengauss/data/dn1 -h "host all all 10.213.42.11/32 trust"
gs_guc set -D /var/lib/opengauss/data/dn1 -c remote_read_mode=off
gs_guc set -D /var/lib/opengauss/data/dn1 -c replication_type=1
gs_guc set -D /var/lib/opengauss/data/dn1 -c port=5432
gs_guc set -D /var/lib/opengauss/data/dn1 -c "listen_addresses='*'"
gs_guc set -D /var/lib/opengauss/data/dn1 -c max_connections=1000
gs_guc set -D /var/lib/opengauss/data/dn1 -c max_wal_senders=16
gs_guc set -D /var/lib/opengauss/data/dn1 -c most_available_sync=on
gs_guc set -D /var/lib/opengauss/data/dn1 -c "application_name='dn_6002'"
gs_guc set -D /var/lib/opengauss/data/dn1 -c "synchronous_standby_names='ANY 1(dn_6001)'"
gs_guc set -D /var/lib/opengauss/data/dn1 -c password_encryption_type=1
gs_guc set -D /var/lib/opengauss/data/dn1 -h "host all cmlab 10.213.41.0/24 md5"
gs_guc set -D /var/lib/opengauss/data/dn1 -h "host all cmlab 10.213.42.0/24 md5"
