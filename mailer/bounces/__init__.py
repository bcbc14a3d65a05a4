"""Closing the loop: what comes back after sending (issue 11).

- ``reports``: returned mail (RFC 3464 DSNs, RFC 5965 ARF complaints, non-standard bounces
  through ``flufl.bounce``, auto-replies told apart) read into plain findings; no database.
- ``handling``: findings mapped to their delivery (VERP first, then the returned Message-ID,
  then the recipient) and acted on: suppression, unsubscribe on complaint, counters, the
  campaign's self-pause. Idempotent.
- ``receiver``: the inbound SMTP/LMTP endpoint (its own process: ``flask bounces serve``).
- ``mailbox``: the IMAP mailbox the worker polls.
- ``webhooks`` and ``sns``: Amazon SES (via SNS), Postmark, SendGrid and Mailgun, each
  verified before anything is read.
"""
