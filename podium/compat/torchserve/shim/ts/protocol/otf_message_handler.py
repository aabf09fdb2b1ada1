"""``send_intermediate_predict_response``: a streaming handler's call, sent over Podium's
wire to the front end, which passes each part on as an HTTP chunk."""

from podium.compat.torchserve.handler import send_intermediate_predict_response

__all__ = ["send_intermediate_predict_response"]
