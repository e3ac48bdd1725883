"""The outgoing message: MIME building, identities, DKIM, the SMTP client, single mails."""
