"""Every gate decision as one structured log event, without the client's full address.

The event is the decision's JSON shape plus ``"event": "region_decision"``:
feature, decision, reasons, country and subdivision, declared residence,
the address truncated to /24 or /48, policy version, resolver, database and
its build date. It goes to the ``api.region.audit`` logger at INFO as one JSON
line, and rides on the log record as ``record.event`` for structured handlers.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from api.region.gate import Decision

logger = logging.getLogger("api.region.audit")


def audit_event(decision: Decision) -> dict[str, Any]:
    return {"event": "region_decision", **decision.to_dict()}


def log_decision(decision: Decision) -> None:
    if logger.isEnabledFor(logging.INFO):
        event = audit_event(decision)
        logger.info(json.dumps(event, ensure_ascii=False), extra={"event": event})
