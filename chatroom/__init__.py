"""chatroom: a small TCP chat room with a threaded server and a console client."""

__version__ = "0.1.0"
