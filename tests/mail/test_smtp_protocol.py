"""The receiving side of an SMTP session, and the wire form of a message."""

from __future__ import annotations

from newsletter.mail.smtp_protocol import wire_form


def test_wire_form_stuffs_dots_and_ends_the_data() -> None:
    assert wire_form(b"a\n.b\r\n..c") == b"a\r\n..b\r\n...c\r\n.\r\n"
    assert wire_form(b"x\r\n") == b"x\r\n.\r\n"
