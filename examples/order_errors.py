"""Exception handling from the specification: RemoteError and ServiceNotFound."""

from examples.orders import PaymentService
from shimeji.exceptions import RemoteError, ServiceNotFound
from shimeji.rpc import RpcProxy, rpc


class OrderService:
    name = "order_service"

    payment_rpc = RpcProxy('payment_service')

    @rpc
    def process_order(self, order_data):
        try:
            # This might raise a remote exception
            payment_result = self.payment_rpc.process_payment(
                order_data['payment_info']
            )
            return {'status': 'success', 'payment': payment_result}
        except RemoteError as e:
            # Handle remote service errors
            return {'status': 'payment_failed', 'error': str(e)}
        except ServiceNotFound:
            # Handle service discovery failures
            return {'status': 'service_unavailable'}


def scenario(cluster):
    """A paid order, a declined card (RemoteError), then no payment service at all."""
    cluster.add_service(OrderService)
    orders = cluster.rpc.order_service
    outcomes = {}
    outcomes["no payment service"] = orders.process_order({"payment_info": {"amount": 1}})
    cluster.add_service(PaymentService)
    outcomes["paid"] = orders.process_order({"payment_info": {"amount": 10, "card": "ok"}})
    outcomes["declined"] = orders.process_order(
        {"payment_info": {"amount": 10, "card": "declined"}}
    )
    return outcomes
