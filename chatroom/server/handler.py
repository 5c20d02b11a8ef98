"""The serving core: socketserver wiring, a reader thread per connection, and shutdown.

Only I/O lives here. What a line means is decided by the connection's `Session`, a login by `login.decide`,
everything after it by the `Room`; what they decide comes back as actions, decisions and effects, performed
here after the room's lock is released. The command line and `main` are in main.py.
"""

from __future__ import annotations

import logging
import os
import socket
import socketserver
import ssl
import threading
import time
from collections import deque

from .. import names, render, tls
from ..codecs import json_codec, plain_codec
from ..commands import Command
from ..names import NameProblem
from ..protocol import (BANNER, LINE_LIMIT, DataRequest, Done, Error, FrameEvent, Line, LineFramer, Offer,
                        Shutdown, parse_data_request)
from ..ratelimit import GuessDelay
from . import transfers
from .admission import Admission
from .config import Config
from .files import FileStore
from .history import History
from .member import Codec, Member
from .room import Effects, Question, Room
from .outbox import FLUSH_GRACE, Outbox
from .reader import Reader, ReaderStopped
from .sender import SWEEP_INTERVAL, Sender
from . import login
from .session import Action, Close, Login, Prompt, Reply, Run, Session, Transfer
from .streams import DONTWAIT, DirectStream, PlainStream, TLSStream, shut

GRACE_TICK = 0.5  # seconds between looks for members whose grace has ended
SHUTDOWN_GRACE = 1.5  # seconds clients get to receive the shutdown notice; the whole stop stays under 2 s
TLS_HINT_AFTER = 2.0  # seconds of silence after which a TLS port tells a plain-text peer (nc) what to do
CLOSE_WAIT = FLUSH_GRACE + 2 * SWEEP_INTERVAL + 0.5  # the sender gives up on a closed outbox before this
HOLD_TICK = 0.25  # seconds: how often a connection waiting out a wrong password looks at the server stopping
HOLD_READ = 16 * 1024  # bytes read ahead while a wrong password is held: the peer's going is seen behind them

log = logging.getLogger("chatroom.server")
WAITS = "waits"  # what the reader hands back when a line must wait: for the disk (history, files), Redis


class ChatHandler(socketserver.BaseRequestHandler):
    """One connection: this thread reads and performs what its session decides; the server's one
    Sender writes. The handler owns the socket and closes it once the sender is done with it."""

    server: ChatServer
    request: socket.socket

    def setup(self) -> None:
        self.peer = "{}:{}".format(*self.client_address[:2])
        self.address = self.client_address[0]
        self.config = self.server.config
        self.session = Session(self.config, time.monotonic(), needs_password=self.server.password is not None)
        self.codec: Codec = plain_codec
        self.member: Member | None = None
        self.outbox = self.server.room.new_outbox()
        self.framer = LineFramer(LINE_LIMIT)
        self._frames: deque[FrameEvent] = deque()  # arrived, not yet performed
        # /history, /search, file commands; with --cluster, what goes through Redis (Room.waits)
        self._waiting: list[Question | Command | Offer | Done] = []
        self.carrying = False  # a data connection: the bytes of a file transfer (transfers.py), not chat
        self.accepted = self.server.track(self)
        self.read_ahead = b""  # what came while a wrong password was held, read after the hold

    def handle(self) -> None:
        reason = "error"
        try:
            if not self.accepted:
                log.warning("refused %s: more than %d connections from that address",
                            self.peer, self.config.max_per_address)
                self.request.settimeout(1.0)
                self.request.sendall(f"! too many connections from your address "
                                     f"(at most {self.config.max_per_address})\n".encode())
                return
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.server.keepalive(self.request)
            if self.server.tls_context is not None:
                if not self._start_tls():
                    return
                assert isinstance(self.request, ssl.SSLSocket)
                self.stream: PlainStream = TLSStream(self.request)
            else:
                self.stream = DirectStream(self.request) if DONTWAIT else PlainStream(self.request)
            self.outbox.stream = self.stream
            self.server.sender.put(self.outbox, (BANNER + "\n").encode())
            reason = self._serve()
        except (ConnectionError, TimeoutError):
            reason = "lost"
        except OSError as exc:
            reason = "lost"
            log.debug("%s: %s", self.peer, exc)
        except Exception:
            log.exception("unexpected error on the connection from %s", self.peer)
        finally:
            if self.member is not None:
                self.server.apply(self.server.room.leave(self.member, reason))
            else:
                self.server.sender.close(self.outbox)

    def finish(self) -> None:
        if not self.outbox.done.wait(CLOSE_WAIT) and self.server.sender.alive:
            self.server.sender.finish(self.outbox)  # late (a starved machine): end it, then close
            self.outbox.done.wait(CLOSE_WAIT)
        self.request.close()
        self.server.untrack(self)

    def _start_tls(self) -> bool:
        """Wrap the connection in TLS; a plain-text client is told what to do instead."""
        hint = b"! this server uses TLS: connect with --tls (and --cafile or --insecure for a self-signed one)\n"
        self.request.settimeout(TLS_HINT_AFTER)
        try:
            first = self.request.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            first = b"?"  # a TLS client speaks first; a silent peer waits for a banner it cannot read
        if not first:
            return False
        if first[0] != tls.TLS_RECORD_HANDSHAKE:
            self.request.sendall(hint)
            log.info("%s: refused a plain-text connection (this server uses TLS)", self.peer)
            return False
        context = self.server.tls_context
        assert context is not None
        self.request.settimeout(self.config.login_timeout)
        # The handler closes the wrapped socket; the original gives it its descriptor. Wrapped before the
        # handshake, so that stop() can shut a handshake that is under way.
        self.request = context.wrap_socket(self.request, server_side=True, do_handshake_on_connect=False)
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            log.info("%s: TLS handshake failed: %s", self.peer, exc)
            return False
        return True

    # --- called from other threads ----------------------------------------

    def disconnect(self) -> None:
        shut(self.request)

    def close_for_shutdown(self) -> None:
        """Tell a connection that has not logged in yet; members hear it from the room. A data connection is
        simply ended (its transfer resumes with the next server)."""
        if self.carrying:
            self.disconnect()
        elif self.member is None:
            self.server.sender.put(self.outbox, self.codec(Shutdown(), ""))
            self.server.sender.close(self.outbox)

    # --- the reading side ---------------------------------------------------

    @property
    def sock(self) -> socket.socket:
        return self.request

    def _serve(self) -> str:
        """Read and perform until the connection ends; the leave reason. A member's plain connection is lent
        to the server's reader (reader.py) and comes back here to end or for a line that waits."""
        reader = self.server.reader if isinstance(self.stream, DirectStream) else None
        while True:
            if self.member is not None and reader is not None and not self.read_ahead:
                try:
                    outcome = reader.serve(self)
                except ReaderStopped:  # it failed (the server is stopping): this thread reads until the end
                    reader = None
                    continue
            else:
                data, self.read_ahead = self.read_ahead, b""  # what came while a wrong password was held
                deadline = self.session.deadline()
                self.stream.settimeout(None if deadline is None else max(0.0, deadline - time.monotonic()))
                try:
                    data = data or self.stream.recv(65536)
                except TimeoutError:
                    outcome = self.tick(time.monotonic())
                else:
                    outcome = self.received(data, time.monotonic())
            while outcome == WAITS:  # this thread may wait: answer, then go on with what came after
                self._perform_waiting()
                outcome = self._work(time.monotonic())
            if outcome is not None:
                return str(outcome)

    def received(self, data: bytes, now: float) -> str | None:
        """Perform what arrived (b"": the peer closed): None, the reason to end, or WAITS. The reader's
        thread calls it too, so nothing here waits; only a data connection's first line (never a member's, so
        never in the reader) hands this thread to the transfer."""
        if not data:
            return "closed"
        self.session.data_arrived(now)
        self._frames += self.framer.feed(data)
        if self.session.json is None and self._frames and (request := self._data_request(self._frames[0])):
            self.carrying = True  # a file's bytes follow: transfers.py carries them, then it ends
            transfers.serve(self.stream, request, data.partition(b"\n")[2], self.server.files, self.peer,
                            lambda: self.outbox.size == 0)
            return "closed"
        return self._work(now)

    @staticmethod
    def _data_request(frame: FrameEvent) -> DataRequest | None:
        """The first line of a data connection (a file's bytes follow), else None."""
        return parse_data_request(frame.text) if isinstance(frame, Line) else None

    def tick(self, now: float) -> str | None:
        """Perform what is due by now (a login's deadline, a ping); as `received`."""
        return self._perform(self.session.expire(now))

    def _work(self, now: float) -> str | None:
        """Perform the lines that arrived, in order, up to one that waits (for the disk or Redis)."""
        session = self.session
        while self._frames:
            actions = session.receive(self._frames.popleft(), now)
            if session.json is not None:
                self.codec = json_codec if session.json else plain_codec
            if (reason := self._perform(actions)) is not None:
                return reason
            if self._waiting:
                return WAITS
        return None

    def _perform_waiting(self) -> None:
        """The lines that wait, in this thread: /history, /search and file commands ask the disk, and with
        --cluster the commands that go through Redis; then their answers go out."""
        work, self._waiting = self._waiting, []
        room = self.server.room
        for item in work:
            if isinstance(item, Question):
                self.server.apply(room.answer(item, room.history.query(item.words, item.count)))
            elif isinstance(item, Command) and room.waits(item):
                assert self.member is not None
                self.server.apply(room.perform(self.member, item))
            else:
                self._transfer(item)

    def _perform(self, actions: list[Action]) -> str | None:
        """Do what the session asked; the reason if the connection is to end."""
        for action in actions:
            match action:
                case Run(command=command):
                    assert self.member is not None
                    if self.server.room.waits(command):
                        self._waiting.append(command)  # performed in this connection's thread (`_work`)
                        continue
                    effects = self.server.room.handle(self.member, command)
                    self.server.apply(effects)
                    self._waiting += effects.questions  # asked once this line is done (`_work`)
                    if self.member.gone:
                        return "quit"
                case Reply(event=event):
                    if self.member is not None:
                        self.server.apply(self.server.room.send(self.member, event))
                    else:
                        self.server.sender.put(self.outbox, self.codec(event, ""))
                case Prompt(text=text):
                    self.server.sender.put(self.outbox, (text + "\n").encode())
                case Login():
                    if (reason := self._perform(self._login(action))) is not None:
                        return reason
                case Close(reason=reason):
                    return reason
                case Transfer(request=request):  # the file store waits for the history file: as a question
                    self._waiting.append(request)
        return None

    def _transfer(self, request: Command | Offer | Done) -> None:
        """A file command: the file store answers, outside the room's lock; the room only delivers."""
        assert self.member is not None
        room, member = self.server.room, self.member
        present = {names.key(name): name for name in room.names()}
        for event in self.server.files.request(member.name, self.codec is json_codec, request,
                                               lambda name: present.get(names.key(name))):
            self.server.apply(room.send(member, event))

    def _login(self, attempt: Login) -> list[Action]:
        """Perform the login's decision (login.py): wait out a wrong password, then join the room."""
        server, now = self.server, time.monotonic()
        decision = login.decide(attempt, server.password, server.admission.login_wait(self.address, now))
        if isinstance(decision, login.WrongPassword):
            hold = server.guesses.fail(self.address, now)
            log.warning("%s: wrong password", self.peer)
            if hold and not self._hold(hold):  # slows guessing down; a right password never waits
                return [Close("closed")]
            decision, now = login.wrong_password(hold), time.monotonic()
        if isinstance(decision, login.Refuse):
            return self._refuse(decision, now)
        room = server.room
        try:
            self.member, effects = room.join(attempt.name, self.codec, self.outbox, resumable=attempt.reconnect,
                                             token=attempt.resume, after=attempt.after, address=self.address,
                                             epoch=attempt.epoch)
        except NameProblem as problem:
            log.debug("%s: refused a name (%s)", self.peer, problem.code)
            return self._refuse(login.name_refused(problem), now)
        self.session.admitted(now)
        server.admission.logged_in(self.address, now)
        mode = "JSON" if self.codec is json_codec else "plain-text"
        log.info("%s %s from %s (%s mode)", self.member.name, "is back" if self.member.resumed else "joined",
                 self.peer, mode)
        server.apply(effects)
        return []

    def _hold(self, seconds: float) -> bool:
        """Wait out a wrong password's hold, reading on meanwhile: False as soon as the peer has gone, so its
        connection slot is free at once and the lines it queued are never read. (What a peer still there sends
        is read after the hold, as usual.)"""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self.server.stopping.is_set():
            if len(self.read_ahead) >= HOLD_READ:  # enough: a flood waits in the socket, and the hold goes on
                self.server.stopping.wait(min(left, HOLD_TICK))
                continue
            self.stream.settimeout(min(left, HOLD_TICK))
            try:
                data = self.stream.recv(65536)
            except TimeoutError:
                continue
            if not data:
                return False
            self.read_ahead += data
        return True

    def _refuse(self, refusal: login.Refuse, now: float) -> list[Action]:
        if refusal.logged:
            log.info("%s: %s", self.peer, refusal.logged)
        if refusal.ask is None:
            return [Reply(Error(code=refusal.code, message=refusal.message)), Close("refused")]
        return self.session.refused(refusal.code, refusal.message, refusal.ask, now, counts=refusal.counts)


def _address_family(host: str) -> socket.AddressFamily:
    return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]


class ChatServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    # On Windows SO_REUSEADDR would let a second server take a port that is in use.
    allow_reuse_address = os.name != "nt"
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], config: Config = Config(), room: Room | None = None,
                 tls_context: ssl.SSLContext | None = None, password: str | None = None,
                 history: History | None = None, files: FileStore | None = None) -> None:
        self.address_family = _address_family(address[0])
        self.config = config
        self.room = room or Room(config, history)
        self.files = files or FileStore()
        self._wire_files()
        self.tls_context = tls_context
        self.password = password
        self.admission = Admission(config, time.monotonic())
        self.guesses = GuessDelay()
        self.stopping = threading.Event()
        self._hurry = False
        self._handlers: set[ChatHandler] = set()
        self._handlers_changed = threading.Condition()
        self.sender = Sender(config, on_slow=self._slow, on_crash=self._stop_after_failure)
        self.sender.start()
        # Where a single recv can be non-blocking, one thread reads every member's plain connection.
        self.reader = Reader(self.sender.ready_many, on_crash=self._stop_after_failure) if DONTWAIT else None
        if self.reader is not None:
            self.reader.start()
        self._clock = threading.Thread(target=self._expire_graces, name="grace clock", daemon=True)
        self._clock.start()
        super().__init__(address, ChatHandler)  # on failure it calls server_close, which stops the threads

    def use_files(self, files: FileStore) -> None:
        """The store shared files go to (main's, beside the history), in place of the temporary one."""
        if files is not self.files:
            self.files.close()
            self.files = files
        self._wire_files()

    def _wire_files(self) -> None:
        self.files.deliver = lambda name, event: self.apply(self.room.tell(name, event))
        self.files.announce = lambda event: self.apply(self.room.share(event))

    def server_close(self) -> None:
        super().server_close()
        self.stopping.set()
        self._clock.join(5)
        if self.reader is not None:
            self.reader.stop()
        self.sender.stop()
        self.files.close()
        self.room.close()

    def _expire_graces(self) -> None:
        """End the grace of members who did not come back, twice a second."""
        try:
            while not self.stopping.wait(GRACE_TICK):
                self.apply(self.room.expire(time.monotonic()))
        except Exception:
            log.exception("the grace clock failed; stopping the server")
            self._stop_after_failure()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def apply(self, effects: Effects) -> None:
        """Perform what a room call left to do, outside the room's lock. In the reader's thread the sender
        hears of it once the reader has read all that was ready (bigger batches, one hand-over)."""
        if effects.ready:
            if self.reader is not None and self.reader.is_current():
                self.reader.ready.update(effects.ready)
            else:
                self.sender.ready_many(effects.ready)
        for member, reason in effects.left:
            log.info("%s left (%s)", member.name, render.leave_reason(reason))

    def _slow(self, outbox: Outbox) -> None:
        self.apply(self.room.drop(outbox, "slow"))

    def _stop_after_failure(self) -> None:
        # serve_forever's thread then runs stop(), which tells everybody (without the sender if it failed).
        threading.Thread(target=self.shutdown, name="stop after sender failure", daemon=True).start()

    def track(self, handler: ChatHandler) -> bool:
        """Count a new connection; False if its address has too many already."""
        with self._handlers_changed:
            self._handlers.add(handler)
        return self.admission.connect(handler.address)

    def untrack(self, handler: ChatHandler) -> None:
        self.admission.disconnect(handler.address)
        with self._handlers_changed:
            self._handlers.discard(handler)
            self._handlers_changed.notify_all()

    def keepalive(self, sock: socket.socket) -> None:
        """Let TCP find a vanished plain-text peer: idle time, then 5 probes a third of it apart."""
        idle = max(1, int(self.config.keepalive))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        options = {"TCP_KEEPIDLE": idle, "TCP_KEEPALIVE": idle, "TCP_KEEPINTVL": max(1, idle // 3), "TCP_KEEPCNT": 5}
        for name, value in options.items():  # the names each OS knows (TCP_KEEPALIVE is macOS's idle time)
            if hasattr(socket, name):
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
                except OSError:
                    log.debug("this system does not take %s; keepalive uses its own timing", name)

    def hurry(self) -> None:
        """Stop waiting for clients to read the shutdown notice (a second Ctrl+C); safe in a signal handler."""
        self._hurry = True

    def _wait_for_handlers(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        with self._handlers_changed:
            while self._handlers and not self._hurry and (left := deadline - time.monotonic()) > 0:
                self._handlers_changed.wait(min(left, 0.1))

    def stop(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Tell every client the server is going, give them `grace` seconds, then close everything.

        The caller has ended serve_forever already (Ctrl+C, or shutdown() from another thread).
        """
        self.stopping.set()
        self.apply(self.room.shutdown())
        with self._handlers_changed:
            handlers = list(self._handlers)
        for handler in handlers:
            handler.close_for_shutdown()
        if self.sender.crashed:
            self.sender.last_words([handler.outbox for handler in handlers])
        self._wait_for_handlers(grace)
        with self._handlers_changed:
            handlers = list(self._handlers)
        for handler in handlers:
            handler.disconnect()
        self._wait_for_handlers(CLOSE_WAIT)
        self.server_close()
