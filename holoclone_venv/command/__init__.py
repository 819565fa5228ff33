"""The ``holoclone`` command: parser, subcommands, doctor, virtualenv.ini, store maintenance and install."""
