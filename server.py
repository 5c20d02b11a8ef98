"""Start a chatroom server: python server.py 8080 (see --help)."""

from chatroom.launch import server

if __name__ == "__main__":
    raise SystemExit(server())
