"""Order processing from the specification: parallel calls with ``call_async``.

``OrderService`` is the specification's code, unchanged but for the imports
and the two dependencies its second method uses (``order_db``,
``customer_rpc`` and ``shipping_rpc`` are not declared in the specification's
snippet). The services it calls are small stand-ins.

    shimeji sim examples/orders.py
"""

from shimeji.rpc import RpcProxy, rpc


class OrderService:
    name = "order_service"

    payment_rpc = RpcProxy('payment_service')
    inventory_rpc = RpcProxy('inventory_service')
    email_rpc = RpcProxy('email_service')
    order_db = RpcProxy('order_db')
    customer_rpc = RpcProxy('customer_service')
    shipping_rpc = RpcProxy('shipping_service')

    @rpc
    def process_order_parallel(self, order_data):
        """Process order with parallel service calls for better performance"""
        # Start multiple async calls in parallel
        payment_reply = self.payment_rpc.process_payment.call_async(
            order_data['payment_info']
        )
        inventory_reply = self.inventory_rpc.reserve_items.call_async(
            order_data['items']
        )
        email_reply = self.email_rpc.send_confirmation.call_async(
            order_data['customer_email'],
            order_data['order_id']
        )

        # Collect results (this blocks until all complete)
        try:
            payment_result = payment_reply.result()
            inventory_result = inventory_reply.result()
            email_result = email_reply.result()

            return {
                'status': 'success',
                'payment': payment_result,
                'inventory': inventory_result,
                'email_sent': email_result
            }
        except Exception as e:
            # Handle any failures in the parallel calls
            return {'status': 'failed', 'error': str(e)}

    @rpc
    def get_order_summary_async(self, order_id):
        """Fetch order data from multiple services asynchronously"""
        # Launch parallel requests
        order_reply = self.order_db.get_order.call_async(order_id)
        customer_reply = self.customer_rpc.get_customer.call_async(order_id)
        shipping_reply = self.shipping_rpc.get_tracking.call_async(order_id)

        # Wait for all results
        order = order_reply.result()
        customer = customer_reply.result()
        shipping = shipping_reply.result()

        return {
            'order': order,
            'customer': customer,
            'shipping': shipping
        }


# -- the services the order service calls ------------------------------------------


class PaymentService:
    name = "payment_service"

    @rpc
    def process_payment(self, payment_info):
        if payment_info.get("card") == "declined":
            raise ValueError("card declined")
        return {"charged": payment_info["amount"], "currency": payment_info.get("currency", "EUR")}


class InventoryService:
    name = "inventory_service"

    @rpc
    def reserve_items(self, items):
        return {"reserved": [item["sku"] for item in items]}


class EmailService:
    name = "email_service"

    @rpc
    def send_confirmation(self, email, order_id):
        return True


class OrderDb:
    name = "order_db"

    @rpc
    def get_order(self, order_id):
        return {"order_id": order_id, "total": 42.5}


class CustomerService:
    name = "customer_service"

    @rpc
    def get_customer(self, order_id):
        return {"customer_id": f"c-{order_id}", "name": "Ada"}


class ShippingService:
    name = "shipping_service"

    @rpc
    def get_tracking(self, order_id):
        return {"carrier": "post", "tracking": f"T{order_id}"}


SERVICES = (OrderService, PaymentService, InventoryService, EmailService, OrderDb,
            CustomerService, ShippingService)

ORDER = {
    "order_id": 1001,
    "payment_info": {"amount": 42.5, "currency": "EUR", "card": "ok"},
    "items": [{"sku": "apple", "qty": 3}, {"sku": "pear", "qty": 1}],
    "customer_email": "ada@example.com",
}


def scenario(cluster):
    """One order processed with parallel calls to payment, inventory and email."""
    for service in SERVICES:
        cluster.add_service(service)
    return cluster.rpc.order_service.process_order_parallel(ORDER)
