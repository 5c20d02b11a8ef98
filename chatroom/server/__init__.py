"""The server: main (command line, logging), handler (socket I/O), session (one connection's state machine),
room (membership and delivery), sender (the write side), admission, history (SQLite), config."""
