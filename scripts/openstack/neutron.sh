# neutron-server for the test cloud; sourced by scripts/openstack.sh after
# configs.sh (same variables). ML2 without agents: networks, subnets,
# routers, ports and security groups are API objects in MariaDB, which is
# all cairn's OS::Neutron::Network plugin and Nova's fake driver need.
# Tenant networks are of type "local" (no ranges to configure); the
# cairn_bindall mechanism driver (scripts/openstack/bindall) binds every
# port, so that Nova's servers on a network do not fail port binding.

write_neutron_config() {
	mkdir -p "$DIR/neutron/lock"
	cat >"$E/neutron.conf" <<EOF
[DEFAULT]
bind_host = 127.0.0.1
bind_port = $P_NEUTRON
core_plugin = ml2
service_plugins = router
auth_strategy = keystone
api_workers = 0
rpc_workers = 0
rpc_state_report_workers = 0
transport_url = $AMQP
notify_nova_on_port_status_changes = false
notify_nova_on_port_data_changes = false
state_path = $DIR/neutron
api_paste_config = $E/neutron-api-paste.ini
[database]
connection = $DB/neutron
$(authtoken)
[ml2]
type_drivers = local,flat
tenant_network_types = local
mechanism_drivers = cairn_bindall
extension_drivers = port_security
[oslo_concurrency]
lock_path = $DIR/neutron/lock
[agent]
report_interval = 0
EOF
	cat >"$E/neutron-api-paste.ini" <<'EOF'
[composite:neutron]
use = egg:Paste#urlmap
/: neutronversions_composite
/v2.0: neutronapi_v2_0
[composite:neutronapi_v2_0]
use = call:neutron.auth:pipeline_factory
keystone = authtoken keystonecontext extensions neutronapiapp_v2_0
[composite:neutronversions_composite]
use = call:neutron.auth:pipeline_factory
keystone = neutronversions
[filter:keystonecontext]
paste.filter_factory = neutron.auth:NeutronKeystoneContext.factory
[filter:authtoken]
paste.filter_factory = keystonemiddleware.auth_token:filter_factory
[filter:extensions]
paste.filter_factory = neutron.api.extensions:plugin_aware_extension_middleware_factory
[app:neutronversions]
paste.app_factory = neutron.pecan_wsgi.app:versions_factory
[app:neutronapiapp_v2_0]
paste.app_factory = neutron.api.v2.router:APIRouter.factory
EOF
}
