"""Start a chatroom server: python server.py 8080 (see --help)."""

from chatroom.serve import main

if __name__ == "__main__":
    raise SystemExit(main())
