"""An ML2 mechanism driver for the test cloud: it binds every port.

The test cloud runs neutron-server without agents; with no mechanism
driver a port Nova binds to its compute host gets vif_type
"binding_failed" and the server goes to ERROR. Nova's fake driver plugs
nothing, so "other" is all it needs."""
from neutron_lib import constants
from neutron_lib.api.definitions import portbindings
from neutron_lib.plugins.ml2 import api

from sqlalchemy import orm

# Neutron's get_ports names Port.port_forwardings, a backref that only
# this model module defines and that exists once the mappers are
# configured; without the port_forwarding service plugin nothing does
# either until a floating IP call, and listing a server's ports (Nova's
# GET /servers/ID) fails with a 500 until then.
import neutron.db.models.port_forwarding  # noqa: F401


class BindAll(api.MechanismDriver):
    def initialize(self):
        orm.configure_mappers()

    @property
    def connectivity(self):
        return portbindings.CONNECTIVITY_L2

    def bind_port(self, context):
        for segment in context.segments_to_bind:
            context.set_binding(segment[api.ID], portbindings.VIF_TYPE_OTHER, {},
                                status=constants.PORT_STATUS_ACTIVE)
            return
