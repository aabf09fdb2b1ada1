"""``ts.handler_utils.utils``: importing a class by dotted name, and streaming."""

import importlib

from podium.compat.torchserve.handler import send_intermediate_predict_response

__all__ = ["import_class", "send_intermediate_predict_response"]


def import_class(class_name, module_prefix=None):
    """The class ``module.Class`` names; with ``module_prefix``, the module is looked up
    under that package (``Class`` alone: in the package itself)."""
    if not class_name:
        raise ImportError("class name is not defined")
    module_name, _, name = class_name.rpartition(".")
    if module_prefix:
        target = f"{module_prefix}.{module_name}" if module_name else module_prefix
    elif module_name:
        target = module_name
    else:
        raise ImportError("module name is not defined.")
    found = getattr(importlib.import_module(target), name, None)
    if found is None:
        raise ImportError(f"class:{name} not found in module:{target}.")
    return found
