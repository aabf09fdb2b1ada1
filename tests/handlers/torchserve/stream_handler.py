"""A streaming TorchServe handler, written as TorchServe's streaming docs show: parts go out
with send_intermediate_predict_response, the returned value is the last part.

Each request's JSON body says {"parts": N, "tag": T}; optional "gate" (a file to wait for
after the first part), "fail" (raise after the parts), "exit" (kill the worker after the
first part) and "legacy" (use the older, deprecated module's function).
"""

import os
import time

from ts.handler_utils.utils import send_intermediate_predict_response
from ts.protocol import otf_message_handler


def handle(data, context):
    if data is None:
        return None
    rows = [row.get("body") or {} for row in data]
    for idx, row in enumerate(rows):
        context.set_response_header(idx, "x-stream-tag", str(row.get("tag", "")))
        context.set_response_content_type(idx, "text/plain")
    for step in range(max(int(row.get("parts", 0)) for row in rows)):
        going = {
            idx: context.request_ids[idx] for idx, row in enumerate(rows) if step < row["parts"]
        }
        parts = [f"{row.get('tag')} part {step}\n" for row in rows]
        legacy = any(row.get("legacy") for row in rows)
        send = otf_message_handler.send_intermediate_predict_response if legacy else None
        (send or send_intermediate_predict_response)(
            parts, going, "Intermediate Prediction success", 200, context
        )
        for idx in going:
            if step == 0 and rows[idx].get("exit"):
                os._exit(3)
            if step == 0 and rows[idx].get("gate"):
                deadline = time.monotonic() + 20
                while not os.path.exists(rows[idx]["gate"]) and time.monotonic() < deadline:
                    time.sleep(0.01)
    if any(row.get("fail") for row in rows):
        raise RuntimeError("the model broke mid-stream")
    return [f"{row.get('tag')} done\n" for row in rows]
