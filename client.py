"""Join a chatroom server: python client.py 127.0.0.1 8080 (see --help)."""

from chatroom.launch import client

if __name__ == "__main__":
    raise SystemExit(client())
