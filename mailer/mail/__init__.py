"""Mail: render (templates to parts), message (parts to bytes), dkim (sign), transport (send)."""
