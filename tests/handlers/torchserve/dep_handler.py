"""A function-style TorchServe handler that needs a package from its requirements file."""

import tinydep


def handle(data, context):
    if data is None:
        return None
    return [{"value": tinydep.VALUE, "module": tinydep.__file__} for _ in data]
