"""RPC for services: ``@rpc`` exposes a method, ``RpcProxy`` calls another service.

    class CalculatorService:
        name = "calculator"

        @rpc
        def multiply(self, a, b):
            return a * b

    class UserService:
        name = "user_service"
        calculator_rpc = RpcProxy("calculator")

        @rpc
        def score(self, base, multiplier):
            return self.calculator_rpc.multiply(base, multiplier)

``proxy.method.call_async(...)`` returns an ``RpcReply`` at once; its
``result()`` waits for the reply.
"""

from shimeji.core.rpc import MethodProxy, Rpc, RpcProxy, RpcReply, ServiceProxy, rpc

ServiceRpc = RpcProxy

__all__ = ["MethodProxy", "Rpc", "RpcProxy", "RpcReply", "ServiceProxy", "ServiceRpc", "rpc"]
