"""Context data from the specification: the audit service reads who is calling."""

import time

from shimeji.contextdata import ContextDataProvider
from shimeji.rpc import rpc


class AuditService:
    name = "audit_service"

    context_data = ContextDataProvider()

    @rpc
    def log_action(self, action, data):
        # Access context passed from calling service
        user_id = self.context_data.get('user_id')
        correlation_id = self.context_data.get('correlation_id')

        return {
            'action': action,
            'user_id': user_id,
            'correlation_id': correlation_id,
            'timestamp': time.time()
        }


def scenario(cluster):
    """A client passing user_id and correlation_id as context data."""
    cluster.add_service(AuditService)
    client = cluster.rpc_proxy(context_data={"user_id": "u-42", "correlation_id": "req-7"})
    return client.audit_service.log_action("login", {"ip": "10.0.0.1"})
