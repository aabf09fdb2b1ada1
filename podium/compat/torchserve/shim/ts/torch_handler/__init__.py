"""``ts.torch_handler``: the base class of TorchServe handlers."""
