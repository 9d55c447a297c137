"""Session-wide test set-up."""

import signal

import pytest


@pytest.fixture(autouse=True, scope="session")
def ctrl_c_raises_keyboard_interrupt():
    """Ctrl-C raises KeyboardInterrupt in this process and in the processes it starts, as in a
    shell's foreground. A shell starts a background job (``cmd &``, nohup) with SIGINT ignored,
    so Python installs no handler and the Ctrl-C tests' SIGINT would be lost: their long steps
    would never end, and a child's would never stop. With the handler in place, children start
    with SIGINT at its default (an exec resets handlers, not ignored signals)."""
    sigint = getattr(signal, "SIGINT", None)
    if sigint is None or signal.getsignal(sigint) is not signal.SIG_IGN:
        yield
        return
    signal.signal(sigint, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(sigint, signal.SIG_IGN)
