"""Scheduled jobs (APScheduler): quarterly settlement and deadline checks."""
