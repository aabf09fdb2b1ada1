"""A TorchServe handler that reads request headers and sets response status and headers.

The X-Threshold header must be a number: the answer says whether the body's number is over
it. A missing or bad threshold answers 400 for that request only (set_response_status);
the body "fail" raises PredictionException (422) for the whole batch.
"""

from ts.utils.util import PredictionException


class ThresholdHandler:
    def __init__(self):
        self.initialized = False

    def initialize(self, context):
        self.model_name = context.model_name
        self.initialized = True

    def handle(self, data, context):
        context.metrics.add_counter("ThresholdChecks", len(data))
        answers = []
        for index, row in enumerate(data):
            body = row.get("body")
            if isinstance(body, (bytes, bytearray)):
                body = body.decode()
            if body == "fail":
                raise PredictionException("the model refused this batch", 422)
            threshold = context.get_request_header(index, "X-Threshold")
            try:
                limit = float(threshold)
            except (TypeError, ValueError):
                context.set_response_status(400, "Bad threshold", index)
                answers.append({"error": f"X-Threshold must be a number, not {threshold!r}"})
                continue
            context.set_response_header(index, "X-Handled-By", self.model_name)
            if row.get("inject"):
                context.set_response_header(index, "X-Evil", "a\r\nSet-Cookie: stolen=1")
            if row.get("format") == b"text":
                context.set_response_content_type(index, "text/plain")
                answers.append("over" if float(body) > limit else "under")
            else:
                answers.append({"over": float(body) > limit, "threshold": limit})
        return answers
