"""The floor for scripts/bench.py: a naive thread-per-client chat server, written the obvious way.

Each line a client sends is relayed to every other client with sendall, one after the other, under one
lock. No TCP_NODELAY, no batching, no send queue: one client that stops reading stalls the whole room.
Protocol: the first line is a name; the server answers "welcome NAME"; then every line is relayed as
"NAME: line". Usage: python benchmarks/naive_threaded.py PORT
"""

import socket
import sys
import threading

clients: list[socket.socket] = []
lock = threading.Lock()


def serve(conn: socket.socket) -> None:
    reader = conn.makefile("rb")
    name = reader.readline().strip()
    conn.sendall(b"welcome " + name + b"\n")
    with lock:
        clients.append(conn)
    try:
        for line in reader:
            with lock:
                for other in clients:
                    if other is not conn:
                        try:
                            other.sendall(name + b": " + line)
                        except OSError:
                            pass
    finally:
        with lock:
            clients.remove(conn)
        conn.close()


def main() -> None:
    listener = socket.create_server(("127.0.0.1", int(sys.argv[1])), backlog=1024)
    print("listening", flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
