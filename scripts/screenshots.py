"""The README's screenshots of the window client: python scripts/screenshots.py [--out docs].

Runs a scripted room (a few lines of history from the day before, a mention, a private message, a user who is
reconnecting, a pasted block waiting in the input), opens `client.py --gui` on an Xvfb display of its own in
light and dark, and takes the window at 860x450, 640x480 and 1280x800 (xdotool sizes it, ImageMagick's
import takes it): docs/window-SIZE-MODE.png. Needs Xvfb, xdotool and import (Debian: xvfb xdotool imagemagick).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chatroom.codecs import encode_json  # noqa: E402
from chatroom.protocol import BANNER, Joined, Message, Private, Reconnecting, Welcome, parse_hello  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SIZES = ((860, 450), (640, 480), (1280, 800))
USERS = ["amy", "bob", "carol", "dave", "erin"]


def room(listener: socket.socket, stop: threading.Event) -> None:
    """Each connection: the greeting, a welcome for the name asked, yesterday's history, then today's talk."""
    now = time.time()
    yesterday = now - 86_400
    history = [Message(1, "bob", "the release notes are in the wiki", earlier=True, ts=yesterday - 3600),
               Message(2, "carol", "thanks! I'll read them tomorrow", earlier=True, ts=yesterday - 3000)]
    today = [Joined(3, "erin", ts=now - 240),
             Message(4, "dave", "morning all ☕", ts=now - 200),
             Message(5, "carol", "build is green again, the flaky test was a race in the reconnect", ts=now - 150),
             Message(6, "bob", "amy, can you review the window changes before lunch?", ts=now - 90),
             Private(7, "erin", "amy", "are we still on for 12:30?", ts=now - 60),
             Reconnecting(8, "dave", ts=now - 30),
             Message(9, "carol", "here is the fix:\n    if self.following:\n        self.text.see(\"end\")",
                     ts=now - 10)]

    def serve(sock: socket.socket) -> None:
        with sock, sock.makefile("r", encoding="utf-8") as lines:
            sock.sendall(BANNER.encode() + b"\n")
            welcome = Welcome(parse_hello(lines.readline()).name, USERS, seq=2, ts=now - 300)
            sock.sendall(b"".join(encode_json(event) for event in [welcome, *history, *today]))
            for _ in lines:  # until the window goes
                pass

    while not stop.is_set():
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=serve, args=(sock,), daemon=True).start()


def shoot(port: int, display: str, mode: str, out: Path) -> None:
    env = {**os.environ, "DISPLAY": display}
    client = subprocess.Popen([sys.executable, str(ROOT / "client.py"), "--gui", "--theme", mode, "127.0.0.1",
                               str(port), "amy"], env=env)
    try:
        window = subprocess.run(["xdotool", "search", "--sync", "--name", "chatroom 127.0.0.1"], env=env,
                                capture_output=True, text=True, timeout=30, check=True).stdout.split()[0]
        time.sleep(1.5)  # the history and the talk shown
        for width, height in SIZES:
            subprocess.run(["xdotool", "windowsize", "--sync", window, str(width), str(height)], env=env, timeout=30,
                           check=True)
            time.sleep(0.8)
            subprocess.run(["import", "-window", window, str(out / f"window-{width}x{height}-{mode}.png")], env=env,
                           timeout=30, check=True)
    finally:
        client.terminate()
        client.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where the PNGs go (default docs/)")
    args = parser.parse_args()
    read, write = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1400x900x24", "-nolisten", "tcp"],
                            pass_fds=[write], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as said:
        display = ":" + said.readline().strip()
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()
    server = threading.Thread(target=room, args=(listener, stop), daemon=True)
    server.start()
    try:
        for mode in ("light", "dark"):
            shoot(listener.getsockname()[1], display, mode, args.out)
    finally:
        stop.set()
        listener.close()
        xvfb.terminate()
        xvfb.wait(10)
    print(f"screenshots in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
