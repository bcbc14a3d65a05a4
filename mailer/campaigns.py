"""Campaigns: compose, edit, schedule, test (to be built)."""
