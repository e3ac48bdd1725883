"""The newsletter pipeline of Radicale vernieuwing jeugdzorg: feed, edition, mail, send."""

__version__ = "0.1.0"
