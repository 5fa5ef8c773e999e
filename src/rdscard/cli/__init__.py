"""The ``rdscard`` command line: one module per subcommand."""
