# Configuration files of the test cloud; sourced by scripts/openstack.sh,
# which sets DIR, E (config dir), L (log dir), CEPH_CONF, the P_* ports,
# KS (Keystone URL), DB (SQLAlchemy URL without database) and AMQP.
# Debian's python3-* packages ship no api-paste.ini: the minimal pipelines
# are written here.

# authblock: the service user's credentials, for every section that
# talks to another service.
authblock() {
	cat <<EOF
auth_url = $KS/v3
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = svc
password = svc
EOF
}

# authtoken: keystonemiddleware's section. Service tokens must carry the
# service role (the Debian security fix for volume detach needs them).
authtoken() {
	printf '[keystone_authtoken]\nwww_authenticate_uri = %s/v3\nservice_token_roles_required = true\n' "$KS"
	authblock
}

write_configs() {
	mkdir -p "$E/placement"
	cat >"$E/glance-api.conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $P_GLANCE
workers = 1
show_image_direct_url = true
[database]
connection = $DB/glance
$(authtoken)
[paste_deploy]
flavor = keystone
config_file = $E/glance-api-paste.ini
[glance_store]
stores = rbd
default_store = rbd
rbd_store_pool = images
rbd_store_user = admin
rbd_store_ceph_conf = $CEPH_CONF
[oslo_concurrency]
lock_path = $DIR/glance/lock
EOF
	cat >"$E/glance-api-paste.ini" <<'EOF'
[pipeline:glance-api-keystone]
pipeline = versionnegotiation authtoken context rootapp
[composite:rootapp]
paste.composite_factory = glance.api:root_app_factory
/: apiversions
/v2: apiv2app
[app:apiversions]
paste.app_factory = glance.api.versions:create_resource
[app:apiv2app]
paste.app_factory = glance.api.v2.router:API.factory
[filter:versionnegotiation]
paste.filter_factory = glance.api.middleware.version_negotiation:VersionNegotiationFilter.factory
[filter:context]
paste.filter_factory = glance.api.middleware.context:ContextMiddleware.factory
[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
delay_auth_decision = true
EOF
	cat >"$E/cinder.conf" <<EOF
[DEFAULT]
my_ip = 127.0.0.1
state_path = $DIR/cinder
transport_url = $AMQP
auth_strategy = keystone
osapi_volume_listen = 127.0.0.1
osapi_volume_listen_port = $P_CINDER
osapi_volume_workers = 1
api_paste_config = $E/cinder-api-paste.ini
enabled_backends = ceph
[database]
connection = $DB/cinder
$(authtoken)
[nova]
region_name = RegionOne
$(authblock)
[service_user]
send_service_user_token = true
$(authblock)
[oslo_concurrency]
lock_path = $DIR/cinder/lock
[ceph]
volume_driver = cinder.volume.drivers.rbd.RBDDriver
volume_backend_name = ceph
rbd_pool = volumes
rbd_ceph_conf = $CEPH_CONF
rbd_user = admin
EOF
	cat >"$E/cinder-api-paste.ini" <<'EOF'
[composite:osapi_volume]
use = call:cinder.api:root_app_factory
/: apiversions
/v3: openstack_volume_api_v3
[composite:openstack_volume_api_v3]
use = call:cinder.api.middleware.auth:pipeline_factory
keystone = request_id faultwrap sizelimit authtoken keystonecontext apiv3
[filter:request_id]
paste.filter_factory = oslo_middleware.request_id:RequestId.factory
[filter:faultwrap]
paste.filter_factory = cinder.api.middleware.fault:FaultWrapper.factory
[filter:sizelimit]
paste.filter_factory = oslo_middleware.sizelimit:RequestBodySizeLimiter.factory
[filter:keystonecontext]
paste.filter_factory = cinder.api.middleware.auth:CinderKeystoneContext.factory
[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
[app:apiv3]
paste.app_factory = cinder.api.v3.router:APIRouter.factory
[pipeline:apiversions]
pipeline = faultwrap osvolumeversionapp
[app:osvolumeversionapp]
paste.app_factory = cinder.api.versions:Versions.factory
EOF
	cat >"$E/placement/placement.conf" <<EOF
[DEFAULT]
log_file = $L/placement.log
[api]
auth_strategy = keystone
$(authtoken)
[placement_database]
connection = $DB/placement
EOF
	cat >"$E/nova.conf" <<EOF
[DEFAULT]
my_ip = 127.0.0.1
host = oscompute
state_path = $DIR/nova
instances_path = $DIR/nova/instances
transport_url = $AMQP
enabled_apis = osapi_compute
osapi_compute_listen = 127.0.0.1
osapi_compute_listen_port = $P_NOVA
osapi_compute_workers = 1
compute_driver = fake.FakeDriver
[api]
auth_strategy = keystone
[wsgi]
api_paste_config = $E/nova-api-paste.ini
[api_database]
connection = $DB/nova_api
[database]
connection = $DB/nova
$(authtoken)
[placement]
region_name = RegionOne
$(authblock)
[neutron]
region_name = RegionOne
$(authblock)
[cinder]
os_region_name = RegionOne
$(authblock)
[glance]
region_name = RegionOne
[service_user]
send_service_user_token = true
$(authblock)
[conductor]
workers = 1
[scheduler]
workers = 1
discover_hosts_in_cells_interval = 2
[vnc]
enabled = false
[oslo_concurrency]
lock_path = $DIR/nova/lock
EOF
	cat >"$E/nova-api-paste.ini" <<'EOF'
[composite:osapi_compute]
use = call:nova.api.openstack.urlmap:urlmap_factory
/: oscomputeversions
/v2.1: openstack_compute_api_v21
[composite:openstack_compute_api_v21]
use = call:nova.api.auth:pipeline_factory_v21
keystone = compute_req_id faultwrap request_log sizelimit authtoken keystonecontext osapi_compute_app_v21
[filter:request_log]
paste.filter_factory = nova.api.openstack.requestlog:RequestLog.factory
[filter:compute_req_id]
paste.filter_factory = nova.api.compute_req_id:ComputeReqIdMiddleware.factory
[filter:faultwrap]
paste.filter_factory = nova.api.openstack:FaultWrapper.factory
[filter:sizelimit]
paste.filter_factory = oslo_middleware:RequestBodySizeLimiter.factory
[filter:keystonecontext]
paste.filter_factory = nova.api.auth:NovaKeystoneContext.factory
[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
[app:osapi_compute_app_v21]
paste.app_factory = nova.api.openstack.compute:APIRouterV21.factory
[pipeline:oscomputeversions]
pipeline = faultwrap request_log oscomputeversionapp
[app:oscomputeversionapp]
paste.app_factory = nova.api.openstack.compute.versions:Versions.factory
EOF
	mkdir -p "$DIR/rabbitmq"
	echo "listeners.tcp.default = 127.0.0.1:$P_AMQP" >"$DIR/rabbitmq/rabbitmq.conf"
	echo '[].' >"$DIR/rabbitmq/enabled_plugins"
}
