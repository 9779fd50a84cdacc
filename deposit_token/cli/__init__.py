"""The command line: the click commands behind ``ape run <name>`` (each ``scripts/<name>.py`` only re-exports
``cli`` from the module of the same name here) and what they share (``common``: parameter types, output, error
reporting, network and token resolution). ``audit`` holds the auditors' subcommands and the ape-less
``python -m deposit_token.audit`` entry point.

The top layer: may import every other package of ``deposit_token``; nothing imports it.
"""
