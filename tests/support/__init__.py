"""What the tests share: real local servers (HTTP, SMTP), the web harness, subscriber helpers."""
