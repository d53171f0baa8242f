"""The user score example of the specification: one service calling another."""

from examples.calculator import CalculatorService
from shimeji.rpc import RpcProxy, rpc


class UserService:
    name = "user_service"

    # RPC proxy to calculator service
    calculator_rpc = RpcProxy('calculator')

    @rpc
    def calculate_user_score(self, user_id, base_score, multiplier):
        # Call remote service method
        score = self.calculator_rpc.multiply(base_score, multiplier)
        return {'user_id': user_id, 'score': score}


def scenario(cluster):
    """A user score computed through the calculator (two replicas)."""
    cluster.add_service(CalculatorService, replicas=2)
    cluster.add_service(UserService)
    return cluster.rpc.user_service.calculate_user_score("u1", 10, 3)
