"""A TorchServe handler as its docs describe: a BaseHandler subclass over a TorchScript model.

Each request's body is a list of numbers (JSON); the answer is the model's output row and
the label of its largest entry, from index_to_name.json.
"""

import torch
from ts.torch_handler.base_handler import BaseHandler


class LinearHandler(BaseHandler):
    def preprocess(self, data):
        rows = []
        for row in data:
            values = row.get("data") or row.get("body")
            if isinstance(values, (bytes, bytearray)):
                values = values.decode()
            if isinstance(values, str):
                values = [float(v) for v in values.split(",")]
            rows.append(values)
        return torch.tensor(rows, dtype=torch.float32)

    def postprocess(self, data):
        answers = []
        for row in data.tolist():
            best = max(range(len(row)), key=row.__getitem__)
            label = self.mapping[str(best)] if self.mapping else str(best)
            answers.append({"output": row, "label": label})
        return answers

    def describe_handle(self):
        return {"inputs": 3, "labels": sorted(self.mapping.values())}
