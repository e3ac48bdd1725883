"""What comes back: the return mailbox read, each message classified and acted on."""
