"""The `bouncewise` command: thin click commands over the library."""
