"""A reloaded page takes its session back. Each page gets a token, which its browser keeps (the app keeps the
tokens of the browser's pages in a gr.BrowserState, i.e. the browser's localStorage); `PageTokens` maps each
token to its page (the Gradio session hash) and the page's `AppSession`. A page loaded with the token of a page
that went away within the reconnect grace takes that page's session over (`PageTokens.rejoin`): its running
or finished job, its objects and prompts, its video. The session's files move to the new page, so that the
grace counted for the old page does not remove them. A token is a secret of its browser: other browsers never
see it, and a page still open (another tab of the same browser) is never taken over.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

from .session import AppSession
from .workdirs import SessionFiles

MAX_TOKENS = 8  # tokens a browser keeps: its pages open now (tabs) and the one being loaded
AWAY_WAIT = 2.0  # seconds a loading page waits for the server to notice that the page it reloads went away
AWAY_POLL = 0.1
FORGET_ENDED = 3600.0  # seconds a page whose session ended is remembered (its browser is told once)


def earlier_session_ended(grace: float) -> str:
    return (f"Your earlier session on this page ended: the page was away for more than {grace:g} s, and its files "
            "were removed. Upload the video again.")


@dataclass(eq=False)
class Page:
    token: str
    session_hash: str
    created: float  # when the page was first seen (a new page's heartbeat may open after its load event)
    session: Optional[AppSession] = None


@dataclass(frozen=True)
class Rejoin:
    """What a loading page gets: the tokens its browser keeps (its own last), the session it took over (None:
    it starts clean), and whether a session of this browser's earlier page ended (away past the grace)."""

    tokens: list[str]
    session: Optional[AppSession] = None
    ended: bool = False


class PageTokens:
    """The pages' tokens and sessions (see the module's docstring). `session_files` tells which pages are open,
    away within the grace, or gone, and holds each session's closer."""

    def __init__(self, session_files: SessionFiles, away_wait: float = AWAY_WAIT,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.session_files, self.away_wait, self._clock = session_files, away_wait, clock
        self._pages: dict[str, Page] = {}  # token -> page
        self._tokens: dict[str, str] = {}  # session hash -> token
        self._ended: dict[str, float] = {}  # token -> when its page's session was found ended
        self._lock = threading.RLock()

    def attach(self, session_hash: Optional[str], session: Optional[AppSession]) -> None:
        """The page's session from now on (a video was loaded)."""
        if not session_hash:
            return
        with self._lock:
            self._prune()
            self._page_of(session_hash).session = session

    def token_of(self, session_hash: str) -> Optional[str]:
        with self._lock:
            return self._tokens.get(session_hash)

    def rejoin(self, tokens: Any, session_hash: str) -> Rejoin:
        """A page's load: `tokens` are its browser's (newest last). Takes over the session of the newest page
        among them that went away within the grace (waiting up to `away_wait` seconds for a page that is still
        open to go: a reload's old page), unless this page has a session of its own already."""
        tokens = valid_tokens(tokens)
        with self._lock:
            self._prune()
            ended = any(self._ended.pop(token, None) is not None for token in tokens)  # told once
            own = self._tokens.get(session_hash)
            candidates = [] if own and self._pages[own].session is not None else self._candidates(tokens)
        page = self._wait_for_away(candidates, session_hash)
        with self._lock:
            session = self._take_over(page, session_hash) if page is not None else None
            if page is not None and page.session is not None and page.session.closed and not page.session.cleared:
                ended = True  # the grace ran out while this page waited
            mine = self._page_of(session_hash).token
            kept = [t for t in tokens if t in self._pages and t != mine][-(MAX_TOKENS - 1):]
            return Rejoin(kept + [mine], session, ended and session is None)

    # ------------------------------------------------------------------ internals (under the lock)
    def _page_of(self, session_hash: str) -> Page:
        token = self._tokens.get(session_hash)
        if token is None:
            token = secrets.token_urlsafe(16)
            self._pages[token] = Page(token, session_hash, self._clock())
            self._tokens[session_hash] = token
        return self._pages[token]

    def _candidates(self, tokens: list[str]) -> list[Page]:
        """The pages of `tokens` with a session to take back, newest first."""
        pages = [self._pages[t] for t in reversed(tokens) if t in self._pages]
        return [p for p in pages if p.session is not None and (p.session.cleared or not p.session.closed)]

    def _wait_for_away(self, candidates: list[Page], session_hash: str) -> Optional[Page]:
        """The newest candidate whose page is away; the first to go within `away_wait` when all are open."""
        candidates = [p for p in candidates if p.session_hash != session_hash]
        deadline = self._clock() + self.away_wait
        while candidates:
            for page in candidates:
                if self.session_files.away(page.session_hash):
                    return page
            if self._clock() >= deadline:
                return None
            time.sleep(AWAY_POLL)
        return None

    def _take_over(self, page: Page, session_hash: str) -> Optional[AppSession]:
        session = page.session
        if session is None or not self.session_files.away(page.session_hash):
            return None
        self.session_files.move(session.close, session_hash)
        if session.closed and not session.cleared:  # the grace ran out in between
            return None
        session.rejoined()
        stale = self._tokens.pop(session_hash, None)  # this page's own token (no session): replaced
        if stale is not None:
            del self._pages[stale]
        del self._tokens[page.session_hash]
        page.session_hash = session_hash
        self._tokens[session_hash] = page.token
        return session

    def _prune(self) -> None:
        """Forget the pages gone for good (past the grace, or never open): those that had a session are
        remembered for FORGET_ENDED, so that their browser is told once."""
        now = self._clock()
        self._ended = {t: when for t, when in self._ended.items() if now - when < FORGET_ENDED}
        for token, page in list(self._pages.items()):
            files, page_hash = self.session_files, page.session_hash
            gone = files.ended(page_hash) or (not files.here(page_hash) and not files.away(page_hash)
                                              and now - page.created > files.reconnect_seconds)
            if gone or (page.session is not None and page.session.closed and not page.session.cleared):
                if page.session is not None:
                    self._ended[token] = now
                if gone:
                    del self._pages[token]
                    self._tokens.pop(page.session_hash, None)
                else:
                    page.session = None  # back after the grace: its page says so on its next action


def valid_tokens(tokens: Any) -> list[str]:
    """The tokens a browser sent (its localStorage: anything), as a list of at most MAX_TOKENS strings."""
    if not isinstance(tokens, list):
        return []
    return [t for t in tokens if isinstance(t, str) and 0 < len(t) <= 64][-MAX_TOKENS:]
