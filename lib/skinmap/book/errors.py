"""The errors of the book machinery: each message says what went wrong and what to do."""

from __future__ import annotations

__all__ = ["BookError", "ChapterFailed", "RunLocked", "RunDirReadOnly"]


class BookError(RuntimeError):
    """A build cannot go on; the message says why and what to do."""


class ChapterFailed(BookError):
    """A chapter's notebook raised, or its inputs are missing or stale; the message names the
    chapter and points at its notebook or at the command to run."""


class RunLocked(BookError):
    """Another process holds the run directory's lock; the message names it (pid, command, start)."""


class RunDirReadOnly(BookError):
    """The run directory cannot be written and a chapter would have to execute."""
