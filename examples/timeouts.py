"""A timeout in virtual time: the caller gives up, the late reply is dropped.

    shimeji sim examples/timeouts.py --format mermaid
"""

import time

from shimeji.exceptions import RpcTimeout
from shimeji.rpc import rpc


class ReportService:
    name = "report_service"

    @rpc
    def build(self, pages):
        time.sleep(pages)  # one virtual second per page
        return {"pages": pages}


def scenario(cluster):
    """A 3-second report asked with a 1-second timeout, then a quick one."""
    cluster.add_service(ReportService)
    client = cluster.rpc_proxy(timeout=1)
    try:
        client.report_service.build(3)
    except RpcTimeout as exc:
        outcome = f"gave up: {exc}"
    cluster.advance(5)  # the late reply arrives and is dropped
    return outcome, client.report_service.build(0)
