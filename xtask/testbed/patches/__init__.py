"""deployer's extensions to moto, one module per AWS service or tool.

moto_launcher.py imports every module here whose name does not start with ``_``, in name order,
and calls its optional ``apply()`` (patch moto's classes before the first request) and
``wrap_app(app) -> app`` (wrap the WSGI application). See moto_launcher.py's docstring for the
contract. Helpers shared by several patches go in ``_``-prefixed modules.
"""
