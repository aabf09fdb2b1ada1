"""A function-style TorchServe handler: a module with handle(data, context).

TorchServe calls handle(None, context) once to initialize. The serialized file holds a
JSON object {"scale": N}; each request's body (JSON number, text or bytes) is multiplied.
"""

import json
import os
import time

import ts

_state = {}


def _initialize(context):
    properties = context.system_properties
    serialized = context.manifest["model"]["serializedFile"]
    with open(os.path.join(properties["model_dir"], serialized)) as file:
        _state["scale"] = json.load(file)["scale"]
    _state["batch_size"] = properties["batch_size"]


def handle(data, context):
    if data is None:
        _initialize(context)
        return None
    # A model takes time: without it a fast machine answers each request before the next
    # arrives, and no backlog ever forms (tests rely on one forming under concurrency).
    time.sleep(0.002)
    answers = []
    for index, row in enumerate(data):
        value = row.get("body")
        if isinstance(value, (bytes, bytearray)):
            value = value.decode()
        answers.append(
            {
                "result": float(value) * _state["scale"],
                "request_id": context.get_request_id(index),
                "batch": len(data),
                "model": context.model_name,
                "ts": ts.__version__,
            }
        )
    return answers
