"""The agent's errors; every one is a single line for the user and exit status 2.

    AgentError
     ├── UsageError      bad ref, bad flags, offline and not cached
     ├── ServerError     the registry answered with an error (unknown ref, refused token)
     ├── TransferError   the connection failed; the pull can be run again to resume
     ├── IntegrityError  bytes that do not hash to their digest
     ├── InvalidInputError  a registry answer or an archive that breaks the rules (a name,
     │                      number, digest or path outside the registry's grammar, a member an
     │                      export never holds, an answer over its size cap); nothing is written
     └── DiskFullError   not enough free space for the pull
"""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the CLI reports as one line."""


class UsageError(AgentError):
    """The request itself is wrong."""


class ServerError(AgentError):
    """The registry refused or failed the request."""


class TransferError(AgentError):
    """The network failed mid-way; running the command again resumes."""


class IntegrityError(AgentError):
    """Bytes that do not hash to the digest they should."""


class InvalidInputError(AgentError):
    """A registry's answer or an archive that is not what it must be; refused before any write."""


class DiskFullError(AgentError):
    """Not enough free disk space."""
